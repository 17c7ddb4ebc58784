/// A user or item key compared and hashed byte for byte. Swift's `String` equality follows
/// Unicode canonical equivalence, so "é" as one code point (NFC) and as "e" plus a combining
/// accent (NFD) are equal strings; as keys they are two users, as SQLite (BINARY collation)
/// and the source files see them. Every dictionary or set keyed by user or item keys uses
/// this type.
public struct ExactKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var description: String { text }

    public static func == (a: ExactKey, b: ExactKey) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }

    /// Byte order, as SQLite's BINARY collation sorts.
    public static func < (a: ExactKey, b: ExactKey) -> Bool { a.text.utf8.lexicographicallyPrecedes(b.text.utf8) }

    public func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
