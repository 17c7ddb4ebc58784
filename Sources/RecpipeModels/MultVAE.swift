import Foundation
import RecpipeNumerics

/// Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman, Jebara, WWW 2018): an autoencoder over a
/// user's item set with a multinomial likelihood. VAE: [I → H → 2L (μ, log σ²) ⇝ L → H → I];
/// DAE: [I → H → I]. tanh between layers, L2-normalised input with dropout, linear output
/// scored by softmax. The first layer works on the sparse input.
public struct MultVAE: Sendable {
    public enum Kind: String, Codable, Sendable { case vae = "multvae", dae = "multdae" }

    public struct Config: Codable, Sendable, Equatable {
        public var kind: Kind = .vae
        /// Hidden width; the paper's 600 for the VAE. The DAE defaults to 200.
        public var hidden = 600
        /// Latent width (VAE).
        public var latent = 200
        /// Dropout on the normalised input.
        public var dropout: Float = 0.5
        public var epochs = 200
        public var batchSize = 500
        public var learningRate: Float = 1e-3
        /// KL weight β rises linearly by 1/`annealSteps` per update up to `betaCap`.
        public var betaCap: Float = 0.2
        /// nil: chosen so that β reaches its cap after 80% of the planned updates (for
        /// ML-20M's 233 batches × 200 epochs this gives about 186,000, close to the
        /// paper's 200,000; on small data it keeps the schedule in proportion).
        public var annealSteps: Int?
        /// Stop when validation NDCG@100 has not improved for this many epochs (nil: never).
        public var patience: Int? = 30
        public var seed: UInt64 = 98765
        /// Synthetic interactions added to the training users' data (nil: real data only).
        public var augmentation: AugmentationSource?

        public init(kind: Kind = .vae) {
            self.kind = kind
            if kind == .dae { hidden = 200 }
        }

        func annealSteps(updatesPerEpoch: Int) -> Int {
            annealSteps ?? max(1, Int((0.8 * Double(updatesPerEpoch * epochs) / Double(max(betaCap, 1e-6))).rounded()))
        }
    }

    /// Where a model's synthetic training interactions came from: an augment run, how many
    /// rows it added and the weight they had (real interactions weigh 1).
    public struct AugmentationSource: Codable, Sendable, Equatable {
        public var runID: Int64
        public var rows: Int
        public var weight: Float

        public init(runID: Int64, rows: Int, weight: Float) {
            self.runID = runID
            self.rows = rows
            self.weight = weight
        }

        enum CodingKeys: String, CodingKey {
            case runID = "run_id"
            case rows, weight
        }
    }

    /// One named tensor of the parameter buffer.
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let config: Config
    public let items: Int
    /// Every weight and bias, in one buffer; `tensors` names its slices.
    public var parameters: [Float]
    public let tensors: [Tensor]

    public init(items: Int, config: Config) {
        self.items = items
        self.config = config
        var layout: [Tensor] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) {
            layout.append(Tensor(name: name, shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        let h = config.hidden, l = config.latent
        add("encoder.0.weight", [items, h]); add("encoder.0.bias", [h])
        if config.kind == .vae {
            add("encoder.1.weight", [h, 2 * l]); add("encoder.1.bias", [2 * l])
            add("decoder.0.weight", [l, h]); add("decoder.0.bias", [h])
        }
        add("decoder.1.weight", [h, items]); add("decoder.1.bias", [items])
        tensors = layout
        parameters = [Float](repeating: 0, count: offset)
    }

    /// Xavier-uniform weights, biases from N(0, 0.001²) truncated (as the reference code).
    public mutating func initialize(rng: inout SeededRandom) {
        for tensor in tensors {
            parameters.withUnsafeMutableBufferPointer { p in
                let slice = UnsafeMutableBufferPointer(rebasing: p[tensor.offset..<(tensor.offset + tensor.count)])
                if tensor.shape.count == 2 {
                    xavierUniform(slice, fanIn: tensor.shape[0], fanOut: tensor.shape[1], rng: &rng)
                } else {
                    truncatedNormal(slice, std: 0.001, rng: &rng)
                }
            }
        }
    }

    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    // MARK: Forward and backward

    /// Activations of one batch, kept for the backward pass.
    struct Workspace {
        var h1: [Float] = []      // (B, H)  tanh(x·W0 + b0)
        var hz: [Float] = []      // (B, 2L) [μ | log σ²]
        var epsilon: [Float] = [] // (B, L)
        var z: [Float] = []       // (B, L)
        var h3: [Float] = []      // (B, H)
        var logits: [Float] = []  // (B, I)
        var dLogits: [Float] = []
        var dH3: [Float] = []
        var dZ: [Float] = []
        var dHz: [Float] = []
        var dH1: [Float] = []
        var dA3: [Float] = []
        var dA1: [Float] = []

        mutating func reserve(batch b: Int, hidden h: Int, latent l: Int, items i: Int) {
            func size(_ a: inout [Float], _ n: Int) { if a.count != n { a = [Float](repeating: 0, count: n) } }
            size(&h1, b * h); size(&hz, b * 2 * l); size(&epsilon, b * l); size(&z, b * l); size(&h3, b * h)
            size(&logits, b * i); size(&dLogits, b * i); size(&dH3, b * h); size(&dZ, b * l); size(&dHz, b * 2 * l)
            size(&dH1, b * h); size(&dA3, b * h); size(&dA1, b * h)
        }
    }

    /// Logits for a batch. Training samples z and uses `input` as given (already
    /// normalised with dropout); inference uses μ.
    func forward(_ input: CSRMatrix, _ w: inout Workspace, training: Bool, rng: inout SeededRandom) {
        let b = input.rows, h = config.hidden, l = config.latent, i = items
        w.reserve(batch: b, hidden: h, latent: l, items: i)
        parameters.withUnsafeBufferPointer { p in
            let base = p.baseAddress!
            func at(_ n: Int) -> UnsafePointer<Float> { base + tensors[n].offset }
            sparseLinearForward(&w.h1, input, at(0), at(1), outputs: h)
            tanhForward(&w.h1, w.h1, count: b * h)
            if config.kind == .dae {
                linearForward(&w.logits, w.h1, at(2), at(3), batch: b, inputs: h, outputs: i)
                return
            }
            linearForward(&w.hz, w.h1, at(2), at(3), batch: b, inputs: h, outputs: 2 * l)
            if training {
                for k in 0..<(b * l) { w.epsilon[k] = Float(rng.normal()) }
                reparameterizeForward(&w.z, w.hz, w.epsilon, batch: b, latent: l)
            } else {
                for r in 0..<b { for k in 0..<l { w.z[r * l + k] = w.hz[r * 2 * l + k] } }
            }
            linearForward(&w.h3, w.z, at(4), at(5), batch: b, inputs: l, outputs: h)
            tanhForward(&w.h3, w.h3, count: b * h)
            linearForward(&w.logits, w.h3, at(6), at(7), batch: b, inputs: h, outputs: i)
        }
    }

    /// Loss of the batch (mean over users of −log-likelihood + β·KL), with gradients
    /// accumulated into `gradients` (laid out like `parameters`). Returns (loss, mean KL).
    func backward(_ input: CSRMatrix, targets: CSRMatrix, _ w: inout Workspace, beta: Float,
                  gradients: inout [Float]) -> (Double, Double) {
        let b = input.rows, h = config.hidden, l = config.latent, i = items
        let scale = 1 / Float(b)
        let nll = multinomialNLL(&w.dLogits, w.logits, targets, scale: scale, items: i)
        var kl = 0.0
        zero(&w.dH3)
        zero(&w.dH1)
        parameters.withUnsafeBufferPointer { p in
            gradients.withUnsafeMutableBufferPointer { g in
                let base = p.baseAddress!, gbase = g.baseAddress!
                func at(_ n: Int) -> UnsafePointer<Float> { base + tensors[n].offset }
                func grad(_ n: Int) -> UnsafeMutablePointer<Float> { gbase + tensors[n].offset }
                if config.kind == .dae {
                    linearBackward(&w.dH1, grad(2), grad(3), w.dLogits, w.h1, at(2), batch: b, inputs: h, outputs: i)
                } else {
                    linearBackward(&w.dH3, grad(6), grad(7), w.dLogits, w.h3, at(6), batch: b, inputs: h, outputs: i)
                    zero(&w.dA3)
                    tanhBackward(&w.dA3, w.dH3, w.h3, count: b * h)
                    zero(&w.dZ)
                    linearBackward(&w.dZ, grad(4), grad(5), w.dA3, w.z, at(4), batch: b, inputs: l, outputs: h)
                    zero(&w.dHz)
                    reparameterizeBackward(&w.dHz, w.dZ, w.hz, w.epsilon, batch: b, latent: l)
                    kl = gaussianKL(w.hz, batch: b, latent: l)
                    gaussianKLBackward(&w.dHz, w.hz, scale: beta * scale, batch: b, latent: l)
                    linearBackward(&w.dH1, grad(2), grad(3), w.dHz, w.h1, at(2), batch: b, inputs: h, outputs: 2 * l)
                }
                zero(&w.dA1)
                tanhBackward(&w.dA1, w.dH1, w.h1, count: b * h)
                sparseLinearBackward(grad(0), grad(1), w.dA1, input, outputs: h)
            }
        }
        return ((nll + Double(beta) * kl) / Double(b), kl / Double(b))
    }
}

func zero(_ a: inout [Float]) { a.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }

extension MultVAE {
    /// Copies another model's weights: item-indexed rows and columns through `itemMapping`
    /// (new item i takes old item itemMapping[i]; nil keeps its current weights), the other
    /// tensors whole. Both models must have the same hidden and latent sizes.
    public mutating func copyWeights(from other: MultVAE, itemMapping: [Int?]) {
        precondition(itemMapping.count == items, "one mapping entry per item")
        for tensor in tensors {
            guard let source = other.tensor(tensor.name) else { continue }
            switch tensor.name {
            case "encoder.0.weight":  // (items, hidden): rows are items
                let width = tensor.shape[1]
                for (new, old) in itemMapping.enumerated() {
                    guard let old else { continue }
                    for c in 0..<width {
                        parameters[tensor.offset + new * width + c] = other.parameters[source.offset + old * width + c]
                    }
                }
            case "decoder.1.weight":  // (hidden, items): columns are items
                let rows = tensor.shape[0], oldItems = source.shape[1]
                for r in 0..<rows {
                    for (new, old) in itemMapping.enumerated() {
                        guard let old else { continue }
                        parameters[tensor.offset + r * items + new] = other.parameters[source.offset + r * oldItems + old]
                    }
                }
            case "decoder.1.bias":
                for (new, old) in itemMapping.enumerated() {
                    guard let old else { continue }
                    parameters[tensor.offset + new] = other.parameters[source.offset + old]
                }
            default:
                precondition(source.shape == tensor.shape, "tensor \(tensor.name) shapes differ")
                for k in 0..<tensor.count { parameters[tensor.offset + k] = other.parameters[source.offset + k] }
            }
        }
    }
}
