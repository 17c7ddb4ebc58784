import Foundation

/// What the `recpipe` command behind a stage kind accepts, read from the command's own
/// argument definitions (ArgumentParser's tool info JSON), so manifests are checked against
/// exactly the options the binary has.
public struct CommandSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case option, flag, positional }

    public struct Option: Sendable, Equatable {
        /// The manifest key: the long name with `_` for `-` (`min_user_interactions`).
        public let key: String
        /// The command-line spelling (`--min-user-interactions`); empty for a positional.
        public let spelling: String
        public let kind: Kind
        public let isRepeating: Bool
        public let isRequired: Bool
        /// The accepted values, when the command lists them (enumerations).
        public let allowedValues: [String]?
        /// The default, as the command's help prints it.
        public var defaultValue: String?
    }

    public let command: String
    public let options: [Option]
    /// Whether the command takes `--db` (the scheduler passes the manifest's database).
    public let takesDatabase: Bool

    /// Options the scheduler sets itself and manifests may not (its stages write under the
    /// run's lock, so they never wait for it).
    static let reserved: Set<String> = ["db", "wait", "verbose", "quiet", "help", "version"]

    public init(command: String, options: [Option], takesDatabase: Bool) {
        self.command = command
        self.options = options
        self.takesDatabase = takesDatabase
    }

    /// Reads the JSON that `recpipe COMMAND --experimental-dump-help` prints.
    public init(command: String, toolInfoJSON: Data) throws {
        struct Name: Decodable { var kind: String; var name: String }
        struct Argument: Decodable {
            var kind: Kind
            var names: [Name]?
            var preferredName: Name?
            var valueName: String?
            var isOptional: Bool
            var isRepeating: Bool
            var allValues: [String]?
            var defaultValue: String?
        }
        struct Command: Decodable { var arguments: [Argument]? }
        struct ToolInfo: Decodable { var command: Command }
        let info = try JSONDecoder().decode(ToolInfo.self, from: toolInfoJSON)
        var options: [Option] = []
        var takesDatabase = false
        for argument in info.command.arguments ?? [] {
            let long = argument.names?.first { $0.kind == "long" }?.name
            guard let name = argument.kind == .positional ? argument.valueName : long ?? argument.preferredName?.name
            else { continue }
            if name == "db" { takesDatabase = true }
            if Self.reserved.contains(name) || name.hasPrefix("experimental") { continue }
            options.append(Option(
                key: name.replacingOccurrences(of: "-", with: "_"),
                spelling: argument.kind == .positional ? "" : "--" + name,
                kind: argument.kind, isRepeating: argument.isRepeating,
                isRequired: !argument.isOptional && argument.kind != .flag,
                allowedValues: argument.allValues, defaultValue: argument.defaultValue))
        }
        self.init(command: command, options: options, takesDatabase: takesDatabase)
    }

    public func option(_ key: String) -> Option? { options.first { $0.key == key } }
}

/// The commands of this recpipe binary: their options, and their own parser's verdict on a
/// list of arguments. The command line provides it from its ArgumentParser types; tests may
/// provide a fixed one.
public protocol StageCommands: Sendable {
    /// The command for `kind`, or nil when this binary lacks it.
    func spec(for kind: String) -> CommandSpec?
    /// Parses `arguments` (command name first) as the binary would, without running anything;
    /// returns the parser's message when they are rejected.
    func check(_ arguments: [String]) -> String?
}
