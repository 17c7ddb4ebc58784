import Foundation
import RecpipeNumerics

/// Every kind of recommender recpipe trains, stores and scores with.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    case multvae, multdae, ease, edlae, itemknn, ials, popularity
    /// The augment stage's generative model (trained by `recpipe augment`).
    case cfgan

    /// The baselines the neural models are compared against.
    public var isBaseline: Bool { [.ease, .edlae, .itemknn, .ials, .popularity].contains(self) }
}

/// The element type of a stored tensor.
public enum TensorType: String, Codable, Sendable { case float32, int32 }

/// A stored tensor's name, shape (row-major) and element type.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var type: TensorType

    public init(_ name: String, _ shape: [Int], _ type: TensorType = .float32) {
        self.name = name
        self.shape = shape
        self.type = type
    }

    public var count: Int { shape.reduce(1, *) }
    /// Both element types are 4 bytes.
    public var bytes: Int { count * 4 }
}

/// Where a stored model's tensors come from (the database, in the store).
public protocol TensorReader {
    /// The stored shape and type of the tensor `name`; throws when there is none.
    func info(_ name: String) throws -> TensorInfo
    /// Fills `buffer`, exactly the tensor's bytes, with its values in native byte order.
    func read(_ name: String, into buffer: UnsafeMutableRawBufferPointer) throws
}

extension TensorReader {
    /// A float32 tensor's values, its shape checked against `shape` (nil: any length
    /// along that axis).
    public func floats(_ name: String, shape: [Int?]) throws -> [Float] {
        let info = try checked(name, .float32, shape)
        return try [Float](unsafeUninitializedCapacity: info.count) { buffer, count in
            try read(name, into: UnsafeMutableRawBufferPointer(buffer))
            count = info.count
        }
    }

    /// An int32 tensor's values, its shape checked as in `floats`.
    public func ints(_ name: String, shape: [Int?]) throws -> [Int32] {
        let info = try checked(name, .int32, shape)
        return try [Int32](unsafeUninitializedCapacity: info.count) { buffer, count in
            try read(name, into: UnsafeMutableRawBufferPointer(buffer))
            count = info.count
        }
    }

    func checked(_ name: String, _ type: TensorType, _ shape: [Int?]) throws -> TensorInfo {
        let info = try info(name)
        let matches = info.type == type && info.shape.count == shape.count
            && zip(info.shape, shape).allSatisfy { stored, expected in expected.map { $0 == stored } ?? (stored >= 0) }
        guard matches else {
            let wanted = shape.map { $0.map(String.init) ?? "n" }.joined(separator: ",")
            throw ModelError.shapeMismatch("tensor \(name) is \(info.type.rawValue) \(info.shape), expected \(type.rawValue) [\(wanted)]")
        }
        return info
    }
}

/// A recommender that can be stored and restored exactly: its kind, its hyperparameters
/// (JSON) and its tensors.
public protocol StorableModel: Recommender {
    associatedtype Hyperparameters: Codable & Sendable
    var kind: ModelKind { get }
    var hyperparameters: Hyperparameters { get }
    /// The tensors, in storage order.
    var tensorInfos: [TensorInfo] { get }
    /// Calls `body` with each tensor's values (native byte order), in `tensorInfos` order.
    func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows
    /// The model with `items` items, from its hyperparameters and stored tensors.
    static func restore(items: Int, hyperparameters: Hyperparameters, from reader: TensorReader) throws -> Self
}

extension StorableModel {
    /// The name of the first float tensor holding a NaN or an infinity; nil when all are finite.
    public func nonFiniteTensor() -> String? {
        var bad: String?
        forEachTensor { info, bytes in
            guard bad == nil, info.type == .float32 else { return }
            if bytes.bindMemory(to: Float.self).contains(where: { !$0.isFinite }) { bad = info.name }
        }
        return bad
    }

    /// The hyperparameters as JSON with sorted keys.
    public func hyperparametersJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(hyperparameters), as: UTF8.self)
    }

    static func decode(items: Int, json: String, from reader: TensorReader) throws -> Self {
        let hyperparameters: Hyperparameters
        do {
            hyperparameters = try JSONDecoder().decode(Hyperparameters.self, from: Data(json.utf8))
        } catch {
            throw ModelError.shapeMismatch("hyperparameters \(json) cannot be read: \(error)")
        }
        return try restore(items: items, hyperparameters: hyperparameters, from: reader)
    }
}

public enum StoredModels {
    /// Restores a model of `kind` from its hyperparameters JSON and tensors.
    public static func restore(kind: ModelKind, items: Int, hyperparameters json: String,
                               from reader: TensorReader) throws -> any StorableModel {
        let model: any StorableModel = switch kind {
        case .multvae, .multdae: try MultVAE.decode(items: items, json: json, from: reader)
        case .ease, .edlae: try EASE.decode(items: items, json: json, from: reader)
        case .itemknn: try ItemKNN.decode(items: items, json: json, from: reader)
        case .ials: try IALS.decode(items: items, json: json, from: reader)
        case .popularity: try Popularity.decode(items: items, json: json, from: reader)
        case .cfgan: try CFGAN.decode(items: items, json: json, from: reader)
        }
        // A type stores two kinds (Mult-VAE and Mult-DAE, EASE and EDLAE): its
        // hyperparameters say which, and must agree with the row.
        guard model.kind == kind else {
            throw ModelError.shapeMismatch("hyperparameters say \(model.kind.rawValue), the model row says \(kind.rawValue)")
        }
        return model
    }
}

// MARK: - The models' storage

extension MultVAE: StorableModel {
    public var kind: ModelKind { config.kind == .vae ? .multvae : .multdae }
    public var hyperparameters: Config { config }
    public var tensorInfos: [TensorInfo] { tensors.map { TensorInfo($0.name, $0.shape) } }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try parameters.withUnsafeBytes { raw in
            for tensor in tensors {
                try body(TensorInfo(tensor.name, tensor.shape),
                         UnsafeRawBufferPointer(rebasing: raw[(tensor.offset * 4)..<((tensor.offset + tensor.count) * 4)]))
            }
        }
    }

    public static func restore(items: Int, hyperparameters: Config, from reader: TensorReader) throws -> MultVAE {
        var model = MultVAE(items: items, config: hyperparameters)
        for tensor in model.tensors {
            _ = try reader.checked(tensor.name, .float32, tensor.shape)
            try model.parameters.withUnsafeMutableBytes { raw in
                try reader.read(tensor.name, into: UnsafeMutableRawBufferPointer(
                    rebasing: raw[(tensor.offset * 4)..<((tensor.offset + tensor.count) * 4)]))
            }
        }
        return model
    }
}

extension EASE: StorableModel {
    public struct Hyperparameters: Codable, Sendable, Equatable {
        public var lambda: Float
        /// EDLAE's dropout probability p (absent for EASE).
        public var dropout: Float?
        public init(lambda: Float, dropout: Float? = nil) {
            self.lambda = lambda
            self.dropout = dropout
        }
    }

    public var kind: ModelKind { dropout == nil ? .ease : .edlae }
    public var hyperparameters: Hyperparameters { Hyperparameters(lambda: lambda, dropout: dropout) }
    public var tensorInfos: [TensorInfo] { [TensorInfo("weights", [items, items])] }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try weights.withUnsafeBytes { try body(tensorInfos[0], $0) }
    }

    public static func restore(items: Int, hyperparameters: Hyperparameters, from reader: TensorReader) throws -> EASE {
        EASE(items: items, lambda: hyperparameters.lambda, dropout: hyperparameters.dropout,
             weights: try reader.floats("weights", shape: [items, items]))
    }
}

extension ItemKNN: StorableModel {
    public struct Hyperparameters: Codable, Sendable, Equatable {
        public var neighbours: Int
        public var shrink: Float
        public init(neighbours: Int, shrink: Float) {
            self.neighbours = neighbours
            self.shrink = shrink
        }
    }

    public var kind: ModelKind { .itemknn }
    public var hyperparameters: Hyperparameters { Hyperparameters(neighbours: neighbours, shrink: shrink) }
    public var tensorInfos: [TensorInfo] {
        [TensorInfo("similarity.row_start", [items + 1], .int32), TensorInfo("similarity.columns", [similarity.nonZeros], .int32),
         TensorInfo("similarity.values", [similarity.nonZeros])]
    }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        let infos = tensorInfos
        try similarity.rowStart.map { Int32($0) }.withUnsafeBytes { try body(infos[0], $0) }
        try similarity.columns.withUnsafeBytes { try body(infos[1], $0) }
        try similarity.values.withUnsafeBytes { try body(infos[2], $0) }
    }

    public static func restore(items: Int, hyperparameters: Hyperparameters, from reader: TensorReader) throws -> ItemKNN {
        let start = try reader.ints("similarity.row_start", shape: [items + 1]).map(Int.init)
        let columns = try reader.ints("similarity.columns", shape: [nil])
        let values = try reader.floats("similarity.values", shape: [columns.count])
        guard start.first == 0, start.last == columns.count, zip(start, start.dropFirst()).allSatisfy({ $0 <= $1 }),
              columns.allSatisfy({ $0 >= 0 && Int($0) < items }) else {
            throw ModelError.shapeMismatch("tensor similarity.row_start or similarity.columns is not a valid sparse matrix")
        }
        return ItemKNN(items: items, neighbours: hyperparameters.neighbours, shrink: hyperparameters.shrink,
                       similarity: CSRMatrix(rows: items, cols: items, rowStart: start, columns: columns, values: values))
    }
}

extension IALS: StorableModel {
    public var kind: ModelKind { .ials }
    public var hyperparameters: Config { config }
    public var tensorInfos: [TensorInfo] { [TensorInfo("item_factors", [items, config.factors])] }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try itemFactors.withUnsafeBytes { try body(tensorInfos[0], $0) }
    }

    public static func restore(items: Int, hyperparameters: Config, from reader: TensorReader) throws -> IALS {
        IALS(config: hyperparameters, items: items,
             itemFactors: try reader.floats("item_factors", shape: [items, hyperparameters.factors]))
    }
}

extension Popularity: StorableModel {
    public struct Hyperparameters: Codable, Sendable, Equatable { public init() {} }

    public var kind: ModelKind { .popularity }
    public var hyperparameters: Hyperparameters { Hyperparameters() }
    public var tensorInfos: [TensorInfo] { [TensorInfo("counts", [items])] }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try counts.withUnsafeBytes { try body(tensorInfos[0], $0) }
    }

    public static func restore(items: Int, hyperparameters: Hyperparameters, from reader: TensorReader) throws -> Popularity {
        Popularity(counts: try reader.floats("counts", shape: [items]))
    }
}

extension CFGAN: StorableModel {
    public var kind: ModelKind { .cfgan }
    public var hyperparameters: Config { config }

    /// generator.L.weight (in, out), generator.L.bias (out), then the discriminator's.
    public var tensorInfos: [TensorInfo] { layout.map(\.info) }

    var layout: [(info: TensorInfo, generator: Bool, offset: Int)] {
        var out: [(TensorInfo, Bool, Int)] = []
        for (name, stack, isGenerator) in [("generator", g, true), ("discriminator", d, false)] {
            for l in 0..<stack.layers {
                out.append((TensorInfo("\(name).\(l).weight", [stack.sizes[l], stack.sizes[l + 1]]), isGenerator, stack.weight[l]))
                out.append((TensorInfo("\(name).\(l).bias", [stack.sizes[l + 1]]), isGenerator, stack.bias[l]))
            }
        }
        return out
    }

    public func forEachTensor(_ body: (TensorInfo, UnsafeRawBufferPointer) throws -> Void) rethrows {
        for (info, isGenerator, offset) in layout {
            try (isGenerator ? generator : discriminator).withUnsafeBytes { raw in
                try body(info, UnsafeRawBufferPointer(rebasing: raw[(offset * 4)..<((offset + info.count) * 4)]))
            }
        }
    }

    public static func restore(items: Int, hyperparameters: Config, from reader: TensorReader) throws -> CFGAN {
        var model = CFGAN(items: items, config: hyperparameters)
        for (info, isGenerator, offset) in model.layout {
            _ = try reader.checked(info.name, .float32, info.shape)
            func fill(_ values: inout [Float]) throws {
                try values.withUnsafeMutableBytes { raw in
                    try reader.read(info.name, into: UnsafeMutableRawBufferPointer(rebasing: raw[(offset * 4)..<((offset + info.count) * 4)]))
                }
            }
            if isGenerator { try fill(&model.generator) } else { try fill(&model.discriminator) }
        }
        return model
    }
}
