import Foundation
import RecpipeStages
import RecpipeStore

/// The status line `recpipe run` keeps under the log on a terminal: stages done out of
/// those selected, and each running stage's time so far, or, while it trains or reports its
/// progress (scoring), a bar and an estimate of the time left.
public final class RunProgress: @unchecked Sendable {
    struct Running {
        var name: String
        var started: Double
        var epochs: Int?
        var epoch = 0
        /// From the stage's progress events.
        var done = 0
        var total = 0
        var unit = ""
    }

    private let lock = NSLock()
    private var total: Int
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
            case .began(let selection):
                total = selection.count
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

    /// Takes a running stage's progress from its events: epochs while training, work done
    /// elsewhere (scoring's users, ingest's megabytes).
    public func stageEvent(_ event: StageEvent, stage: String) {
        lock.withLock {
            guard let index = running.firstIndex(where: { $0.name == stage }) else { return }
            switch event {
            case .epoch(let epoch):
                running[index].epoch = epoch
            case .progress(let done, let total, let unit) where total > 0:
                running[index].done = done
                running[index].total = total
                running[index].unit = unit
            default:
                break
            }
        }
    }

    public func render(now: Double = Clock.monotonic(), width: Int = 100) -> String {
        lock.withLock {
            var text = "[\(done)/\(total) done]"
            for stage in running {
                let elapsed = now - stage.started
                text += " \(stage.name) \(Self.duration(elapsed))"
                if let epochs = stage.epochs, epochs > 0, stage.epoch > 0 {
                    text += Self.bar(stage.epoch, of: epochs, elapsed: elapsed, label: "epoch \(stage.epoch)/\(epochs)")
                } else if stage.total > 0, stage.done > 0 {
                    text += Self.bar(stage.done, of: stage.total, elapsed: elapsed,
                                     label: "\(stage.done)/\(stage.total)\(stage.unit.isEmpty ? "" : " " + stage.unit)")
                }
            }
            return String(text.prefix(max(10, width - 1)))
        }
    }

    /// " [####....] LABEL, ETA m:ss": `done` of `total` after `elapsed` seconds.
    static func bar(_ done: Int, of total: Int, elapsed: Double, label: String) -> String {
        let share = min(1, Double(done) / Double(total))
        let filled = Int((share * 20).rounded())
        let left = elapsed / Double(done) * Double(max(0, total - done))
        return " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: 20 - filled) + "] "
            + "\(label), ETA \(duration(left))"
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
            : String(format: "%d:%02d", total / 60, total % 60)
    }
}
