import HTTPTypes

/// Every HTTP header the gateway names beyond HTTPTypes' own (docs/api.md describes each one a
/// client sees). Message headers on the broker are `AiraHeader`'s (AiraMessaging).
extension HTTPField.Name {
    // Request identity and tracing (Middleware.swift).
    static let requestID = Self("X-Request-Id")!
    static let traceparent = Self("traceparent")!
    static let forwardedFor = Self("X-Forwarded-For")!

    // Rate limits (IETF draft RateLimit headers, RateLimiter.swift).
    static let rateLimitLimit = Self("RateLimit-Limit")!
    static let rateLimitRemaining = Self("RateLimit-Remaining")!
    static let rateLimitReset = Self("RateLimit-Reset")!
    static let rateLimitPolicy = Self("RateLimit-Policy")!

    // Aira's own: how an answer was made.
    /// Questions: `use`, `bypass` or `refresh` the answer cache (request). Posts: `hit`, `miss`
    /// or `bypass`, what the posts cache did (response).
    static let airaCache = Self("X-Aira-Cache")!
    /// Questions: `true` when the answer came from the cache (response).
    static let airaCached = Self("X-Aira-Cached")!
    /// Milliseconds of the request spent in Aira (gateway, broker, proxy, Redis), the wait for the model left out.
    static let airaOverhead = Self("X-Aira-Overhead-Ms")!
    /// `/v1/chat/completions`: the conversation the question belongs to (request).
    static let airaConversation = Self("X-Aira-Conversation")!
    /// Posts: `cache`, `replica` or `primary`, where a read was served from.
    static let airaRead = Self("X-Aira-Read")!
    /// `web`: the request comes from the web app, which may use the refresh cookie.
    static let airaClient = Self("X-Aira-Client")!

    // Security headers of the web app (WebApp.swift).
    static let contentSecurityPolicy = Self("Content-Security-Policy")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
}
