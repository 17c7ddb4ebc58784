import CKernels
import Foundation

/// Adam (Kingma and Ba 2015) over one flat parameter buffer.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public private(set) var step = 0
    private var m: [Float]
    private var v: [Float]

    public init(parameters: Int, learningRate: Float = 1e-3) {
        self.learningRate = learningRate
        m = [Float](repeating: 0, count: parameters)
        v = [Float](repeating: 0, count: parameters)
    }

    /// One update of `parameters` against `gradients`, which it then sets to zero (ready for
    /// the next step's accumulation, without a separate pass over them).
    public mutating func update(_ parameters: inout [Float], _ gradients: inout [Float]) {
        precondition(parameters.count == m.count && gradients.count == m.count, "Adam: buffer sizes differ")
        step += 1
        let correction1 = 1 - powf(beta1, Float(step)), correction2 = 1 - powf(beta2, Float(step))
        let rate = learningRate * correction2.squareRoot() / correction1
        let epsilonHat = epsilon * correction2.squareRoot()
        let (b1, b2) = (beta1, beta2)
        let count = parameters.count
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                parameters.withUnsafeMutableBufferPointer { p in
                    gradients.withUnsafeMutableBufferPointer { g in
                        let (m, v, p, g) = (m.baseAddress!, v.baseAddress!, p.baseAddress!, g.baseAddress!)
                        // Blocks of 64Ki values on all cores, each through the vectorized C kernel.
                        parallelRows((count + 65_535) / 65_536) { block in
                            let start = block * 65_536, n = min(count, start + 65_536) - start
                            recpipe_adam(p + start, g + start, m + start, v + start, n, b1, b2, rate, epsilonHat)
                        }
                    }
                }
            }
        }
    }

    /// The update `update` makes, written out in Swift one value at a time: the reference the
    /// kernel is tested against.
    public static func referenceUpdate(parameter p: inout Float, gradient g: inout Float, m: inout Float, v: inout Float,
                                       b1: Float, b2: Float, rate: Float, epsilon: Float) {
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= rate * m / (v.squareRoot() + epsilon)
        g = 0
    }
}

/// Glorot/Xavier uniform: U(−a, a) with a = √(6 / (fan_in + fan_out)).
public func xavierUniform(_ w: UnsafeMutableBufferPointer<Float>, fanIn: Int, fanOut: Int, rng: inout SeededRandom) {
    let a = (6 / Float(fanIn + fanOut)).squareRoot()
    for k in 0..<w.count { w[k] = (2 * rng.uniformFloat() - 1) * a }
}

/// Normal(0, std) truncated to ±2·std, by rejection.
public func truncatedNormal(_ w: UnsafeMutableBufferPointer<Float>, std: Float, rng: inout SeededRandom) {
    for k in 0..<w.count {
        var x = rng.normal()
        while abs(x) > 2 { x = rng.normal() }
        w[k] = Float(x) * std
    }
}
