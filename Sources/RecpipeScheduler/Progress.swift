import Foundation
import RecpipeStore

/// The status line `recpipe run` keeps under the log on a terminal: stages done out of
/// those selected, and each running stage's time so far, or, while it trains, its epoch, a
/// bar and an estimate of the time left.
public final class RunProgress: @unchecked Sendable {
    struct Running {
        var name: String
        var started: Double
        var epochs: Int?
        var epoch = 0
    }

    private let lock = NSLock()
    private let total: Int
    private var done = 0
    private var running: [Running] = []
    /// Each stage's planned epochs (its `epochs` parameter or the command's default).
    private let epochs: [String: Int]

    public init(total: Int, epochs: [String: Int]) {
        self.total = total
        self.epochs = epochs
    }

    public func handle(_ event: RunEvent, now: Double = Clock.monotonic()) {
        lock.withLock {
            switch event {
            case .started(let stage, _):
                running.removeAll { $0.name == stage.name }
                running.append(Running(name: stage.name, started: now, epochs: epochs[stage.name]))
            case .done(let outcome):
                // A failed attempt that will be retried is not done; its next start replaces it.
                running.removeAll { $0.name == outcome.stage }
                done += 1
            }
        }
    }

    /// Reads a stage's log line for progress (`epoch finished ... epoch=N`).
    public func logLine(_ line: String, stage: String) {
        guard line.contains(" epoch finished "), let field = line.split(separator: " ").first(where: { $0.hasPrefix("epoch=") }),
              let epoch = Int(field.dropFirst(6)) else { return }
        lock.withLock {
            if let index = running.firstIndex(where: { $0.name == stage }) { running[index].epoch = epoch }
        }
    }

    public func render(now: Double = Clock.monotonic(), width: Int = 100) -> String {
        lock.withLock {
            var text = "[\(done)/\(total) done]"
            for stage in running {
                let elapsed = now - stage.started
                text += " \(stage.name) \(Self.duration(elapsed))"
                if let epochs = stage.epochs, epochs > 0, stage.epoch > 0 {
                    let share = min(1, Double(stage.epoch) / Double(epochs))
                    let filled = Int((share * 20).rounded())
                    let left = elapsed / Double(stage.epoch) * Double(max(0, epochs - stage.epoch))
                    text += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: 20 - filled) + "]"
                    text += " epoch \(stage.epoch)/\(epochs), ETA \(Self.duration(left))"
                }
            }
            return String(text.prefix(max(10, width - 1)))
        }
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
            : String(format: "%d:%02d", total / 60, total % 60)
    }
}
