import Foundation
import RecpipeNumerics

/// CFGAN (Chae, Kang, Kim, Lee, CIKM 2018), user-based, with zero-reconstruction and partial
/// masking ("CFGAN_ZP"). The generator G maps a user's interaction vector c (the condition)
/// to a score per item in (0, 1); the discriminator D judges [c, r] pairs, r being either
/// the real vector (c itself) or the generator's output masked to the user's items and a
/// sample of the others. Each step samples, per user, two sets of unobserved items (each
/// unobserved item with probability `zrRatio` and `pmRatio`): ZR adds α·Σ_{j∈ZR} ĝ_j² to
/// G's loss, PM unmasks those items in the vector D sees.
///
/// G: [I → hidden… → I], sigmoid after every layer. D: [2I → hidden… → 1], sigmoid hidden
/// layers, the output a logit. Both inputs are binary and sparse: the first layers cost
/// ∝ interactions except for D's view of the generated vector, which is dense.
public struct CFGAN: Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var generatorHidden: [Int] = [400]
        public var discriminatorHidden: [Int] = [125, 125, 125, 125]
        public var epochs = 200
        public var batchSize = 32
        public var generatorLearningRate: Float = 1e-4
        public var discriminatorLearningRate: Float = 1e-4
        /// L2 penalty (λ/2)·Σw² on each network's weights.
        public var generatorL2: Float = 1e-3
        public var discriminatorL2: Float = 0
        /// Updates of D, then of G, on each batch.
        public var discriminatorSteps = 1
        public var generatorSteps = 1
        /// Share of each user's unobserved items sampled for zero-reconstruction and for
        /// partial masking, each step.
        public var zrRatio: Float = 0.7
        public var pmRatio: Float = 0.7
        /// α, the weight of the zero-reconstruction term.
        public var zrCoefficient: Float = 0.03
        /// G minimises log(1 − D(fake)) as in the paper; false: −log D(fake) (the
        /// non-saturating form of Goodfellow et al. 2014).
        public var saturatingLoss = true
        /// Validation NDCG@100 of G as a recommender every this many epochs; the best
        /// epoch's generator is kept.
        public var evaluateEvery = 5
        /// Stop after this many epochs without a better validation NDCG@100 (nil: never).
        public var patience: Int? = 50
        public var seed: UInt64 = 98765

        public init() {}
    }

    /// A stack of dense layers in one buffer: layer l maps sizes[l] → sizes[l+1], its
    /// weight (in × out, row-major) then its bias.
    struct Stack: Sendable, Equatable {
        let sizes: [Int]
        let weight: [Int]
        let bias: [Int]
        let count: Int

        init(_ sizes: [Int]) {
            self.sizes = sizes
            var weight: [Int] = [], bias: [Int] = [], offset = 0
            for l in 0..<(sizes.count - 1) {
                weight.append(offset)
                offset += sizes[l] * sizes[l + 1]
                bias.append(offset)
                offset += sizes[l + 1]
            }
            (self.weight, self.bias, count) = (weight, bias, offset)
        }

        var layers: Int { sizes.count - 1 }
    }

    public let config: Config
    public let items: Int
    let g: Stack
    let d: Stack
    /// The generator's weights and biases, laid out by `g`.
    public var generator: [Float]
    /// The discriminator's, laid out by `d`.
    public var discriminator: [Float]

    public init(items: Int, config: Config) {
        self.items = items
        self.config = config
        g = Stack([items] + config.generatorHidden + [items])
        d = Stack([2 * items] + config.discriminatorHidden + [1])
        generator = [Float](repeating: 0, count: g.count)
        discriminator = [Float](repeating: 0, count: d.count)
    }

    /// Xavier-uniform weights, zero biases.
    public mutating func initialize(rng: inout SeededRandom) {
        for (stack, isGenerator) in [(g, true), (d, false)] {
            for l in 0..<stack.layers {
                let fanIn = stack.sizes[l], fanOut = stack.sizes[l + 1]
                if isGenerator {
                    generator.withUnsafeMutableBufferPointer {
                        xavierUniform(UnsafeMutableBufferPointer(rebasing: $0[stack.weight[l]..<(stack.weight[l] + fanIn * fanOut)]),
                                      fanIn: fanIn, fanOut: fanOut, rng: &rng)
                    }
                } else {
                    discriminator.withUnsafeMutableBufferPointer {
                        xavierUniform(UnsafeMutableBufferPointer(rebasing: $0[stack.weight[l]..<(stack.weight[l] + fanIn * fanOut)]),
                                      fanIn: fanIn, fanOut: fanOut, rng: &rng)
                    }
                }
            }
        }
    }

    /// Whether `other`'s weights can seed this model: the same hidden layers in both networks
    /// (the items may differ).
    public func hasHiddenLayers(of other: CFGAN) -> Bool {
        config.generatorHidden == other.config.generatorHidden && config.discriminatorHidden == other.config.discriminatorHidden
    }

    /// Takes `other`'s weights (a warm start), items matched by `itemMapping`: for each of
    /// this model's items, its index in `other`, or nil for an item `other` does not know,
    /// whose weights stay as they are (initialised). Items map to G's input rows and output
    /// columns and to both halves of D's input rows; the hidden layers copy as they are.
    public mutating func copyWeights(from other: CFGAN, itemMapping: [Int?]) {
        precondition(itemMapping.count == items && hasHiddenLayers(of: other), "warm start: the hidden layers differ")
        let vectorRows = itemMapping.map { $0.map { $0 + other.items } }
        for l in 0..<g.layers {
            Self.copyLayer(l, into: &generator, g, from: other.generator, other.g,
                           rows: l == 0 ? itemMapping : nil, columns: l == g.layers - 1 ? itemMapping : nil)
        }
        for l in 0..<d.layers {
            Self.copyLayer(l, into: &discriminator, d, from: other.discriminator, other.d,
                           rows: l == 0 ? itemMapping + vectorRows : nil, columns: nil)
        }
    }

    /// Copies layer l's weight (in × out) and bias, rows and columns re-indexed by the
    /// mappings (nil mapping: the same index; a nil entry: left as it is).
    static func copyLayer(_ l: Int, into target: inout [Float], _ ts: Stack, from source: [Float], _ ss: Stack,
                          rows: [Int?]?, columns: [Int?]?) {
        let (inputs, outputs, sourceOutputs) = (ts.sizes[l], ts.sizes[l + 1], ss.sizes[l + 1])
        let columnOf = columns ?? (0..<outputs).map { $0 }
        for r in 0..<inputs {
            guard let sr = rows.map({ $0[r] }) ?? r else { continue }
            let (t, s) = (ts.weight[l] + r * outputs, ss.weight[l] + sr * sourceOutputs)
            for c in 0..<outputs {
                if let sc = columnOf[c] { target[t + c] = source[s + sc] }
            }
        }
        for c in 0..<outputs {
            if let sc = columnOf[c] { target[ts.bias[l] + c] = source[ss.bias[l] + sc] }
        }
    }

    // MARK: Forward and backward

    /// Activations of one batch, kept for the backward passes. Raw buffers, reused from
    /// batch to batch.
    final class Workspace {
        var gActs: [Buffer] = []    // per G layer: (B, sizes[l+1]), after the sigmoid; last = ĝ (B, I)
        var gGrads: [Buffer] = []   // like gActs: ∂/∂output, then ∂/∂pre-activation
        var dActs: [Buffer] = []    // per D layer: (B, sizes[l+1]); hidden after the sigmoid, last the logit
        var dGrads: [Buffer] = []   // like dActs
        let fake = Buffer()         // (B, I) ĝ ⊙ pm
        let dFake = Buffer()        // (B, I)
        let pm = Buffer()           // (B, I) 1 on the user's items and the PM sample
        let zr = Buffer()           // (B, I) 1 on the ZR sample
        let scratch = Buffer()      // D's parameter gradients that a G step does not keep

        /// Sizes the buffers for a batch of b rows; `training` adds D's and the masks'.
        func reserve(batch b: Int, g: Stack, d: Stack, training: Bool = true) {
            if gActs.count != g.layers { gActs = (0..<g.layers).map { _ in Buffer() }; gGrads = (0..<g.layers).map { _ in Buffer() } }
            if dActs.count != d.layers { dActs = (0..<d.layers).map { _ in Buffer() }; dGrads = (0..<d.layers).map { _ in Buffer() } }
            for l in 0..<g.layers { gActs[l].reserve(b * g.sizes[l + 1]) }
            guard training else { return }
            for l in 0..<g.layers { gGrads[l].reserve(b * g.sizes[l + 1]) }
            for l in 0..<d.layers { dActs[l].reserve(b * d.sizes[l + 1]); dGrads[l].reserve(b * d.sizes[l + 1]) }
            for buffer in [fake, dFake, pm, zr] { buffer.reserve(b * g.sizes[0]) }
            scratch.reserve(d.count)
        }
    }

    /// A float buffer that grows as needed.
    final class Buffer {
        private(set) var p: UnsafeMutablePointer<Float> = .allocate(capacity: 1)
        private(set) var count = 0
        private var capacity = 1

        func reserve(_ n: Int) {
            if n > capacity {
                p.deallocate()
                p = .allocate(capacity: n)
                capacity = n
            }
            count = n
        }

        func zero() { p.update(repeating: 0, count: count) }
        deinit { p.deallocate() }
    }

    /// ĝ for a batch of conditions (binary rows): into `w.gActs.last`.
    func generate(_ condition: CSRMatrix, _ w: Workspace) {
        let b = condition.rows
        generator.withUnsafeBufferPointer { p in
            let p = p.baseAddress!
            for l in 0..<g.layers {
                let outputs = g.sizes[l + 1], y = w.gActs[l].p
                if l == 0 {
                    sparseLinearForward(y, condition, p + g.weight[0], p + g.bias[0], outputs: outputs)
                } else {
                    linearForward(y, w.gActs[l - 1].p, p + g.weight[l], p + g.bias[l], batch: b, inputs: g.sizes[l], outputs: outputs)
                }
                sigmoidForward(y, y, count: b * outputs)
            }
        }
    }

    /// D's logits for [condition, vector] pairs: `real` (the vector is the condition) or the
    /// dense `w.fake`. Into `w.dActs.last`.
    func discriminate(_ condition: CSRMatrix, real: Bool, _ w: Workspace) {
        let b = condition.rows, i = items
        discriminator.withUnsafeBufferPointer { p in
            let p = p.baseAddress!
            for l in 0..<d.layers {
                let outputs = d.sizes[l + 1], y = w.dActs[l].p
                if l == 0 {
                    // The condition's rows of W0, then the vector's (rows I..<2I).
                    sparseLinearForward(y, condition, p + d.weight[0], p + d.bias[0], outputs: outputs)
                    if real {
                        sparseLinearAccumulate(y, condition, p + d.weight[0] + i * outputs, outputs: outputs)
                    } else {
                        BLAS.gemm(m: b, n: outputs, k: i, w.fake.p, p + d.weight[0] + i * outputs, beta: 1, y)
                    }
                } else {
                    linearForward(y, w.dActs[l - 1].p, p + d.weight[l], p + d.bias[l], batch: b, inputs: d.sizes[l], outputs: outputs)
                }
                if l < d.layers - 1 { sigmoidForward(y, y, count: b * outputs) }
            }
        }
    }

    /// Back through D from the logits' gradient (B) already in `w.dGrads.last`: accumulates
    /// D's parameter gradients into `gradients` (the first layer's only with `firstLayer`)
    /// and, with `wantsFakeGradient`, writes ∂/∂fake into `w.dFake`.
    func discriminatorBackward(_ condition: CSRMatrix, real: Bool, _ w: Workspace,
                               gradients: UnsafeMutablePointer<Float>, wantsFakeGradient: Bool, firstLayer: Bool) {
        let b = condition.rows, i = items
        discriminator.withUnsafeBufferPointer { p in
            let p = p.baseAddress!
            for l in stride(from: d.layers - 1, through: 0, by: -1) {
                let outputs = d.sizes[l + 1], dy = w.dGrads[l].p
                // dGrads[l] holds ∂/∂(layer output); the hidden layers' sigmoid makes it ∂/∂(pre-activation).
                if l < d.layers - 1 { sigmoidGradientInPlace(dy, w.dActs[l].p, count: b * outputs) }
                if l > 0 {
                    w.dGrads[l - 1].zero()
                    linearBackward(w.dGrads[l - 1].p, gradients + d.weight[l], gradients + d.bias[l], dy, w.dActs[l - 1].p,
                                   p + d.weight[l], batch: b, inputs: d.sizes[l], outputs: outputs)
                    continue
                }
                if firstLayer {
                    sparseLinearBackward(gradients + d.weight[0], gradients + d.bias[0], dy, condition, outputs: outputs)
                    let vector = gradients + d.weight[0] + i * outputs
                    if real {
                        sparseLinearBackward(vector, nil, dy, condition, outputs: outputs)
                    } else {
                        BLAS.gemm(m: i, n: outputs, k: b, w.fake.p, transposeA: true, dy, beta: 1, vector)
                    }
                }
                if wantsFakeGradient {
                    BLAS.gemm(m: b, n: i, k: outputs, dy, p + d.weight[0] + i * outputs, transposeB: true, w.dFake.p)
                }
            }
        }
    }

    /// D's loss on a batch, −mean log D(real) − mean log(1 − D(fake)), with its gradients
    /// (L2 included) accumulated into `gradients` (laid out like `discriminator`). The masks
    /// and `w.fake` must be in place. Returns the loss without L2.
    func discriminatorStep(_ condition: CSRMatrix, _ w: Workspace, gradients: inout [Float]) -> Double {
        let b = condition.rows, scale = 1 / Float(b)
        var loss = 0.0
        gradients.withUnsafeMutableBufferPointer { grad in
            for real in [true, false] {
                discriminate(condition, real: real, w)
                let logits = w.dActs[d.layers - 1].p, dLogits = w.dGrads[d.layers - 1].p
                for r in 0..<b {
                    let s = 1 / (1 + expf(-logits[r]))
                    // Binary cross-entropy: real wants 1 (−log σ), fake wants 0 (−log(1 − σ)).
                    loss += (real ? softplus(-logits[r]) : softplus(logits[r])) / Double(b)
                    dLogits[r] = (real ? s - 1 : s) * scale
                }
                discriminatorBackward(condition, real: real, w, gradients: grad.baseAddress!, wantsFakeGradient: false,
                                      firstLayer: true)
            }
        }
        addL2(&gradients, discriminator, stack: d, lambda: config.discriminatorL2)
        return loss
    }

    /// G's loss on a batch: the adversarial term (mean log(1 − D(fake)), or −mean log D(fake))
    /// plus α·mean Σ_{ZR} ĝ², with gradients (L2 included) accumulated into `gradients` (laid
    /// out like `generator`). Needs `generate`, the masks and `maskFake` done. Returns
    /// (adversarial, ZR).
    func generatorStep(_ condition: CSRMatrix, _ w: Workspace, gradients: inout [Float]) -> (Double, Double) {
        let b = condition.rows, i = items, scale = 1 / Float(b), alpha = config.zrCoefficient
        discriminate(condition, real: false, w)
        var adversarial = 0.0
        let logits = w.dActs[d.layers - 1].p, dLogits = w.dGrads[d.layers - 1].p
        for r in 0..<b {
            let s = 1 / (1 + expf(-logits[r]))
            if config.saturatingLoss {
                adversarial -= softplus(logits[r]) / Double(b)       // log(1 − σ)
                dLogits[r] = -s * scale
            } else {
                adversarial += softplus(-logits[r]) / Double(b)      // −log σ
                dLogits[r] = (s - 1) * scale
            }
        }
        discriminatorBackward(condition, real: false, w, gradients: w.scratch.p, wantsFakeGradient: true, firstLayer: false)
        // ∂/∂ĝ = ∂/∂fake ⊙ pm + 2α/B·ĝ ⊙ zr, then through G's output sigmoid.
        let last = g.layers - 1
        let (o, dO, df, pm, zr) = (w.gActs[last].p, w.gGrads[last].p, w.dFake.p, w.pm.p, w.zr.p)
        var rowLoss = [Double](repeating: 0, count: b)
        rowLoss.withUnsafeMutableBufferPointer { rowLoss in
            let rl = rowLoss.baseAddress!
            parallelRows(b) { r in
                var sum: Float = 0
                for k in (r * i)..<((r + 1) * i) {
                    let y = o[k]
                    sum += zr[k] * y * y
                    dO[k] = (df[k] * pm[k] + 2 * alpha * scale * zr[k] * y) * y * (1 - y)
                }
                rl[r] = Double(sum)
            }
        }
        let zrLoss = Double(alpha) * rowLoss.reduce(0, +) / Double(b)
        generator.withUnsafeBufferPointer { p in
            gradients.withUnsafeMutableBufferPointer { grad in
                let (p, grad) = (p.baseAddress!, grad.baseAddress!)
                for l in stride(from: last, through: 0, by: -1) {
                    let outputs = g.sizes[l + 1], dy = w.gGrads[l].p
                    if l < last { sigmoidGradientInPlace(dy, w.gActs[l].p, count: b * outputs) }
                    if l == 0 {
                        sparseLinearBackward(grad + g.weight[0], grad + g.bias[0], dy, condition, outputs: outputs)
                    } else {
                        w.gGrads[l - 1].zero()
                        linearBackward(w.gGrads[l - 1].p, grad + g.weight[l], grad + g.bias[l], dy, w.gActs[l - 1].p,
                                       p + g.weight[l], batch: b, inputs: g.sizes[l], outputs: outputs)
                    }
                }
            }
        }
        addL2(&gradients, generator, stack: g, lambda: config.generatorL2)
        return (adversarial, zrLoss)
    }

    /// fake = ĝ ⊙ pm.
    func maskFake(_ w: Workspace, rows b: Int) {
        let (fake, out, pm) = (w.fake.p, w.gActs[g.layers - 1].p, w.pm.p)
        for k in 0..<(b * items) { fake[k] = out[k] * pm[k] }
    }

    /// Samples the batch's masks: pm is 1 on the user's items and on each other item with
    /// probability `pmRatio`; zr is 1 on each other item with probability `zrRatio`. Each
    /// row draws from its own stream (seeded by `seed` and the row's user), so the result
    /// does not depend on the number of cores.
    func sampleMasks(_ condition: CSRMatrix, users: ArraySlice<Int>, seed: UInt64, _ w: Workspace) {
        let i = items
        let pmThreshold = UInt64(Double(config.pmRatio) * 16_777_216), zrThreshold = UInt64(Double(config.zrRatio) * 16_777_216)
        let users = Array(users)
        let (pm, zr) = (w.pm.p, w.zr.p)
        parallelRows(condition.rows) { r in
            var rng = SeededRandom(seed: seed, stream: UInt64(users[r]))
            let p = pm + r * i, z = zr + r * i
            for k in 0..<i {
                let bits = rng.next()
                p[k] = (bits >> 40) < pmThreshold ? 1 : 0
                z[k] = ((bits >> 16) & 0xFF_FFFF) < zrThreshold ? 1 : 0
            }
            for k in condition.rowStart[r]..<condition.rowStart[r + 1] {
                p[Int(condition.columns[k])] = 1
                z[Int(condition.columns[k])] = 0
            }
        }
    }

    /// The total L2 penalty of both networks, (λ/2)·Σw² over weights.
    func l2Penalty() -> (generator: Double, discriminator: Double) {
        func penalty(_ values: [Float], _ stack: Stack, _ lambda: Float) -> Double {
            guard lambda > 0 else { return 0 }
            var sum = 0.0
            for l in 0..<stack.layers {
                for k in stack.weight[l]..<stack.bias[l] { sum += Double(values[k] * values[k]) }
            }
            return 0.5 * Double(lambda) * sum
        }
        return (penalty(generator, g, config.generatorL2), penalty(discriminator, d, config.discriminatorL2))
    }
}

/// gradients += λ·w on the weights (not the biases) of `stack`.
func addL2(_ gradients: inout [Float], _ values: [Float], stack: CFGAN.Stack, lambda: Float) {
    guard lambda > 0 else { return }
    for l in 0..<stack.layers {
        for k in stack.weight[l]..<stack.bias[l] { gradients[k] += lambda * values[k] }
    }
}
