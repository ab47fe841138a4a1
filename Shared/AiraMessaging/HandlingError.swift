/// An error that says whether trying again can help. Handlers throw these (or errors that
/// conform) so the runtime knows whether to retry through the delay tiers or dead-letter at once.
public protocol ClassifiedError: Error {
    /// True: retry later (a dependency was down, a timeout). False: retrying cannot help.
    var isTransient: Bool { get }
    /// A short stable code for `x-aira-error-type` and metrics (`validation_failed`, `smtp_550`).
    var code: String { get }
}

/// Retrying cannot help (invalid content, a rule violated): the message goes to the DLQ at once.
public struct PermanentError: ClassifiedError, CustomStringConvertible {
    public var code: String
    public var message: String
    public var isTransient: Bool { false }
    public init(code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { self.message }
}

/// Worth retrying after a delay: the message goes to the next retry tier.
public struct TransientError: ClassifiedError, CustomStringConvertible {
    public var code: String
    public var message: String
    public var isTransient: Bool { true }
    public init(code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { self.message }
}

/// How the runtime classifies any error: `ClassifiedError` says for itself; anything else is
/// treated as transient (retried, then dead-lettered when attempts run out), because an
/// unexpected error is more often a passing fault than a bad message.
public enum ErrorClassification {
    public static func isTransient(_ error: any Error) -> Bool {
        if let c = error as? any ClassifiedError { return c.isTransient }
        if error is CancellationError { return true }
        return true
    }

    public static func code(_ error: any Error) -> String {
        if let c = error as? any ClassifiedError { return c.code }
        return String(describing: type(of: error))
    }

    public static func message(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 1000 ? String(text.prefix(1000)) + "…" : text
    }
}
