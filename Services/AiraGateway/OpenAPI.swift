/// The gateway's API as OpenAPI 3, served at `/openapi.yaml`. At start-up the gateway checks
/// that this document and its router list the same operations (``OpenAPI/mismatches(routes:)``)
/// and refuses to start otherwise, so the document cannot drift from the code.
enum OpenAPI {
    /// `(METHOD, /path/{param})` pairs in the document.
    static var operations: Set<String> {
        var result: Set<String> = []
        var path: String?
        for line in self.document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if !line.isEmpty, !line.hasPrefix(" ") {
                path = nil
            } else if let p = path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "patch", "delete"].contains(method) { result.insert("\(method.uppercased()) \(p)") }
            }
        }
        return result
    }

    /// Operations in the router but not documented, and documented but not routed.
    static func mismatches(routes: [String]) -> (undocumented: [String], unrouted: [String]) {
        let routed = Set(routes.map(Self.normalize))
        let documented = self.operations
        return (routed.subtracting(documented).sorted(), documented.subtracting(routed).sorted())
    }

    /// `POST /api/admin/users/:id/suspend` → `POST /api/admin/users/{id}/suspend`.
    static func normalize(_ route: String) -> String {
        route.split(separator: " ", maxSplits: 1).enumerated().map { i, part in
            i == 0 ? String(part) : part.split(separator: "/", omittingEmptySubsequences: false).map { c in
                c.hasPrefix(":") ? "{\(c.dropFirst())}" : String(c)
            }.joined(separator: "/")
        }.joined(separator: " ")
    }

    static let document = """
        openapi: 3.0.3
        info:
          title: Aira API
          version: "1"
          description: |
            Aira's HTTP API (aira-gateway). Errors always have the shape
            {"error":{"code":"…","message":"…"}}. Every response carries X-Request-Id.
            Endpoints under /api are rate limited per client address and per user, with
            RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset and RateLimit-Policy headers;
            over the limit: 429 with Retry-After. A backend that is not running or not accepting
            work: 503 with Retry-After. A backend that does not answer in time: 504.
        servers:
          - url: http://127.0.0.1:8080
        components:
          securitySchemes:
            bearer:
              type: http
              scheme: bearer
              bearerFormat: JWT (EdDSA, 15 min)
          schemas:
            ModelUsage:
              type: object
              properties:
                model: {type: string}
                requests: {type: integer}
                promptTokens: {type: integer}
                completionTokens: {type: integer}
                cost: {type: number, description: dollars}
            Insights:
              type: object
              properties:
                userId: {type: string, format: uuid}
                day: {type: string, format: date, description: The analysed day (the window ends with it)}
                windowStart: {type: string, format: date}
                computedAt: {type: string, format: date-time}
                events: {type: integer}
                activeDays: {type: integer}
                countsByType: {type: object, additionalProperties: {type: integer}}
                countsByDay:
                  type: array
                  items: {type: object, properties: {day: {type: string, format: date}, events: {type: integer}}}
                interests:
                  type: array
                  items: {type: object, properties: {term: {type: string}, weight: {type: number}}}
                returnLikelihood: {type: number, nullable: true, description: Probability of activity the next day}
                model:
                  type: object
                  nullable: true
                  properties:
                    auc: {type: number, nullable: true}
                    logLoss: {type: number, nullable: true}
                    trainSize: {type: integer}
                    testSize: {type: integer}
                    baseRate: {type: number}
                    iterations: {type: integer}
            Error:
              type: object
              required: [error]
              properties:
                error:
                  type: object
                  required: [code, message]
                  properties:
                    code: {type: string, example: invalid_credentials}
                    message: {type: string}
            Credentials:
              type: object
              required: [email, password]
              properties:
                email: {type: string, format: email}
                password: {type: string, minLength: 10, description: "10 characters to 72 bytes, not common, not the email"}
            User:
              type: object
              required: [id, email, role, emailVerified, suspended, createdAt]
              properties:
                id: {type: string, format: uuid}
                email: {type: string}
                role: {type: string, enum: [USER, ADMIN]}
                emailVerified: {type: boolean}
                suspended: {type: boolean}
                createdAt: {type: string, format: date-time}
            TokenPair:
              type: object
              required: [accessToken, tokenType, expiresIn, refreshToken, user]
              properties:
                accessToken: {type: string}
                tokenType: {type: string, enum: [Bearer]}
                expiresIn: {type: integer, description: seconds}
                refreshToken: {type: string, description: "opaque; single use: every refresh returns a new one"}
                user: {$ref: "#/components/schemas/User"}
            SessionsEnded:
              type: object
              required: [sessionsEnded]
              properties:
                sessionsEnded: {type: integer}
            Post:
              type: object
              required: [id, authorId, title, body, tags, likes, createdAt, updatedAt]
              properties:
                id: {type: string, format: uuid}
                authorId: {type: string, format: uuid}
                title: {type: string, maxLength: 200}
                body: {type: string, maxLength: 20000}
                tags: {type: array, items: {type: string}, maxItems: 8}
                likes: {type: integer}
                liked: {type: boolean, description: "whether the caller likes it; absent for anonymous readers"}
                createdAt: {type: string, format: date-time}
                updatedAt: {type: string, format: date-time}
            PostBody:
              type: object
              description: "title 1–200 characters, body 1–20000 (no control characters but newline and tab), at most 8 tags of 1–32 letters, digits, - or _"
              properties:
                title: {type: string, maxLength: 200}
                body: {type: string, maxLength: 20000}
                tags: {type: array, items: {type: string, maxLength: 32}, maxItems: 8}
            PostSummary:
              type: object
              required: [id, authorId, title, excerpt, tags, likes, createdAt]
              properties:
                id: {type: string, format: uuid}
                authorId: {type: string, format: uuid}
                title: {type: string}
                excerpt: {type: string, description: "the body's first 240 characters"}
                tags: {type: array, items: {type: string}}
                likes: {type: integer}
                createdAt: {type: string, format: date-time}
            PostPage:
              type: object
              required: [items]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/PostSummary"}}
                nextCursor: {type: string, description: "pass as ?cursor= for the next page; absent on the last page"}
                page: {type: integer, description: "with ?page=: this page"}
                pages: {type: integer, description: "with ?page=: how many pages there are"}
                total: {type: integer, description: "with ?page=: how many posts match (counted at most a minute ago)"}
            SearchHit:
              type: object
              required: [id, authorId, title, snippet, tags, likes, createdAt, score]
              properties:
                id: {type: string, format: uuid}
                authorId: {type: string, format: uuid}
                title: {type: string}
                snippet:
                  type: array
                  description: "a passage of the body as plain-text runs; match marks the words that matched"
                  items: {type: object, required: [text, match], properties: {text: {type: string}, match: {type: boolean}}}
                tags: {type: array, items: {type: string}}
                likes: {type: integer}
                createdAt: {type: string, format: date-time}
                score: {type: number, description: "relevance (ts_rank_cd), or title similarity when matched is similar"}
            SearchPage:
              type: object
              required: [items, matched]
              properties:
                items: {type: array, items: {$ref: "#/components/schemas/SearchHit"}}
                nextCursor: {type: string}
                matched: {type: string, enum: [words, similar], description: "similar: no word matched, these titles resemble the keyword"}
            Likes:
              type: object
              required: [likes, liked]
              properties:
                likes: {type: integer}
                liked: {type: boolean}
            Playlist:
              type: object
              required: [id, ownerId, title, description, public, videoCount, createdAt, updatedAt]
              properties:
                id: {type: string, format: uuid}
                ownerId: {type: string, format: uuid}
                title: {type: string, maxLength: 200}
                description: {type: string, maxLength: 5000}
                public: {type: boolean}
                videoCount: {type: integer}
                createdAt: {type: string, format: date-time}
                updatedAt: {type: string, format: date-time}
            PlaylistBody:
              type: object
              properties:
                title: {type: string, maxLength: 200, description: "required when creating"}
                description: {type: string, maxLength: 5000}
                public: {type: boolean, default: false}
            Video:
              type: object
              required: [id, ownerId, title, mediaType, sizeBytes, status, plays, likes, createdAt]
              properties:
                id: {type: string, format: uuid}
                ownerId: {type: string, format: uuid}
                title: {type: string}
                mediaType: {type: string, description: "sniffed from the content, e.g. video/mp4, image/png"}
                sizeBytes: {type: integer}
                status: {type: string, enum: [processing, ready, failed]}
                failureReason: {type: string, description: "why the thumbnail could not be made (status failed)"}
                thumbnailUrl: {type: string, description: "present once status is ready"}
                plays: {type: integer}
                likes: {type: integer}
                createdAt: {type: string, format: date-time}
            Page:
              type: object
              required: [items]
              properties:
                items: {type: array, items: {}}
                nextCursor: {type: string, description: "pass as ?cursor= for the next page; absent on the last page"}
            AuditEntry:
              type: object
              required: [id, type, at, attributes]
              properties:
                id: {type: string, description: "the event's message id"}
                type: {type: string, example: login}
                userId: {type: string, format: uuid}
                actorId: {type: string, format: uuid}
                at: {type: string, format: date-time}
                ip: {type: string}
                attributes: {type: object, additionalProperties: {type: string}}
          responses:
            Error:
              description: Error
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Error"}
        paths:
          /api/auth/signup:
            post:
              summary: Create an account; a verification mail is queued
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/Credentials"}
              responses:
                "201":
                  description: Created
                  content:
                    application/json:
                      schema:
                        type: object
                        properties:
                          userId: {type: string, format: uuid}
                          email: {type: string}
                          verificationSent: {type: boolean}
                "400": {$ref: "#/components/responses/Error"}
                "409": {$ref: "#/components/responses/Error"}
                "413": {$ref: "#/components/responses/Error"}
                "415": {$ref: "#/components/responses/Error"}
                "429": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
                "504": {$ref: "#/components/responses/Error"}
          /api/auth/verify:
            get:
              summary: Verify an email address (the link in the verification mail)
              parameters:
                - {name: token, in: query, required: true, schema: {type: string}}
              responses:
                "200": {description: Verified, content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}}
                "401": {$ref: "#/components/responses/Error"}
            post:
              summary: Verify an email address
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {type: object, required: [token], properties: {token: {type: string}}}
              responses:
                "200": {description: Verified, content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}}
                "401": {$ref: "#/components/responses/Error"}
          /api/auth/login:
            post:
              summary: Log in (opens a session on this device)
              description: |
                Failed logins are throttled per account and per client address with a growing
                delay (429 login_throttled with Retry-After). Suspended accounts get 403.
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/Credentials"}
              responses:
                "200": {description: Logged in, content: {application/json: {schema: {$ref: "#/components/schemas/TokenPair"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "429": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
                "504": {$ref: "#/components/responses/Error"}
          /api/auth/refresh:
            post:
              summary: Exchange a refresh token for a new pair (rotation)
              description: |
                Presenting an already-used refresh token ends that session (401 token_reused).
                Browser sessions: with the header X-Aira-Client: web, login, refresh and password
                change answer without refreshToken in the body and set it as the HttpOnly cookie
                aira_refresh (SameSite=Strict, Path=/api/auth); refresh then reads the cookie and
                takes no body. A 401/403 from refresh (and logout) clears the cookie.
              parameters: [{name: X-Aira-Client, in: header, schema: {type: string, enum: [web]}}]
              requestBody:
                required: false
                content:
                  application/json:
                    schema: {type: object, required: [refreshToken], properties: {refreshToken: {type: string}}}
              responses:
                "200": {description: New tokens, content: {application/json: {schema: {$ref: "#/components/schemas/TokenPair"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/auth/logout:
            post:
              summary: End this device's session
              security: [{bearer: []}]
              responses:
                "200": {description: Ended, content: {application/json: {schema: {$ref: "#/components/schemas/SessionsEnded"}}}}
                "401": {$ref: "#/components/responses/Error"}
          /api/auth/logout-all:
            post:
              summary: End every session of the user (all devices)
              security: [{bearer: []}]
              responses:
                "200": {description: Ended, content: {application/json: {schema: {$ref: "#/components/schemas/SessionsEnded"}}}}
                "401": {$ref: "#/components/responses/Error"}
          /api/auth/sessions:
            get:
              summary: "The caller's open sessions (one per login on a device), most recently used first; the current one marked"
              security: [{bearer: []}]
              responses:
                "200": {description: "{items: [{id, current, createdAt, lastUsedAt, ip, userAgent}]}", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/auth/sessions/{id}:
            delete:
              summary: "End one of the caller's sessions (log out another device)"
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string}}]
              responses:
                "200": {description: Ended, content: {application/json: {schema: {$ref: "#/components/schemas/SessionsEnded"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/auth/password:
            post:
              summary: Change the password; every session ends, this device gets a new one
              security: [{bearer: []}]
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [currentPassword, newPassword]
                      properties:
                        currentPassword: {type: string}
                        newPassword: {type: string}
              responses:
                "200":
                  description: Changed
                  content:
                    application/json:
                      schema:
                        type: object
                        properties:
                          sessionsEnded: {type: integer}
                          session: {$ref: "#/components/schemas/TokenPair"}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "429": {$ref: "#/components/responses/Error"}
          /api/users/me:
            get:
              summary: The logged-in user
              security: [{bearer: []}]
              responses:
                "200": {description: The user, content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/users/me/insights:
            get:
              summary: "The caller's latest insights from the nightly analysis (28 days of activity, interests, return likelihood)"
              security: [{bearer: []}]
              responses:
                "200": {description: The insights, content: {application/json: {schema: {$ref: "#/components/schemas/Insights"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/users/me/usage:
            get:
              summary: "The caller's token and cost budgets as they stand, and what their upstream GPT calls cost today and this month, per model (cached answers cost nothing)"
              security: [{bearer: []}]
              responses:
                "200":
                  description: "{budgets: [{scope, period, unit, limit, used, remaining, resetAt}], today: [ModelUsage], month: [ModelUsage]}"
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [budgets, today, month]
                        properties:
                          budgets:
                            type: array
                            items:
                              type: object
                              properties:
                                scope: {type: string}
                                period: {type: string, enum: [day, month]}
                                unit: {type: string, enum: [tokens, usd]}
                                limit: {type: number}
                                used: {type: number}
                                remaining: {type: number}
                                resetAt: {type: string, format: date-time}
                          today: {type: array, items: {$ref: "#/components/schemas/ModelUsage"}}
                          month: {type: array, items: {$ref: "#/components/schemas/ModelUsage"}}
                "401": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/usage:
            get:
              summary: "GPT usage per user, model and UTC day (admins): ?from=&to= yyyy-MM-dd (default today, at most 92 days), ?userId=, ?limit= 1-10000 (default 1000); by day, most expensive first"
              security: [{bearer: []}]
              parameters:
                - {name: from, in: query, schema: {type: string, format: date}}
                - {name: to, in: query, schema: {type: string, format: date}}
                - {name: userId, in: query, schema: {type: string, format: uuid}}
                - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 10000}}
              responses:
                "200": {description: "{rows: [{day, userId, model, requests, promptTokens, completionTokens, cost}], truncated}"}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/users:
            get:
              summary: "Find users (admins): ?q= part of an email or a user id, ?limit=, ?cursor=; newest first"
              security: [{bearer: []}]
              parameters: [{name: q, in: query, schema: {type: string, maxLength: 200}}]
              responses:
                "200": {description: "{items: [{id, email, role, emailVerified, suspended, suspendedAt, createdAt}], nextCursor}", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/admin/users/{id}/suspend:
            post:
              summary: Suspend a user (ADMIN); their sessions end
              security: [{bearer: []}]
              parameters:
                - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
              responses:
                "200": {description: Suspended, content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/admin/users/{id}/unsuspend:
            post:
              summary: Reinstate a suspended user (ADMIN)
              security: [{bearer: []}]
              parameters:
                - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
              responses:
                "200": {description: Reinstated, content: {application/json: {schema: {$ref: "#/components/schemas/User"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/gpt/qna:
            post:
              summary: Ask the AI a question (cached, quota-limited)
              description: |
                Identical questions (after normalising case, Unicode, whitespace and trailing
                punctuation) share a cached answer; cached answers do not count against the
                daily quota. X-Aira-Cache (use, bypass, refresh) or the body's cache field
                controls the cache. With conversationId the conversation so far is part of the question.
              security: [{bearer: []}]
              parameters:
                - {name: X-Aira-Cache, in: header, required: false, schema: {type: string, enum: [use, bypass, refresh]}}
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [question]
                      properties:
                        question: {type: string}
                        conversationId: {type: string, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$"}
                        cache: {type: string, enum: [use, bypass, refresh]}
              responses:
                "200":
                  description: The answer
                  content:
                    application/json:
                      schema:
                        type: object
                        properties:
                          answer: {type: string}
                          cached: {type: boolean}
                          model: {type: string}
                          finishReason: {type: string}
                          conversationId: {type: string}
                          quota:
                            type: object
                            properties:
                              used: {type: integer}
                              limit: {type: integer}
                              resetAt: {type: string, format: date-time}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "429": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
                "504": {$ref: "#/components/responses/Error"}
          /api/gpt/quota:
            get:
              summary: "Today's question quota: {used, limit, resetAt} (cached answers do not count)"
              security: [{bearer: []}]
              responses:
                "200": {description: "{used, limit, resetAt}"}
                "401": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/gpt/conversations:
            get:
              summary: "The caller's conversations, most recently used first (?limit= 1-200, default 50)"
              security: [{bearer: []}]
              responses:
                "200": {description: "{items: [{id, title, createdAt, updatedAt, messageCount}]}", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "401": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/gpt/conversations/{id}:
            get:
              summary: "A conversation with its messages (the last 40), oldest first"
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, pattern: "^[A-Za-z0-9_-]{1,64}$"}}]
              responses:
                "200": {description: "{id, title, createdAt, updatedAt, messages: [{role, content}]}"}
                "401": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
            patch:
              summary: "Rename a conversation {title}"
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string}}]
              requestBody: {required: true, content: {application/json: {schema: {type: object, required: [title], properties: {title: {type: string, maxLength: 200}}}}}}
              responses:
                "200": {description: "{id, title, createdAt, updatedAt, messageCount}"}
                "400": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Delete a conversation and its messages
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string}}]
              responses:
                "204": {description: Deleted}
                "404": {$ref: "#/components/responses/Error"}
          /v1/chat/completions:
            post:
              summary: OpenAI-compatible chat completions (Bearer = Aira access token)
              description: |
                The OpenAI request and response format, non-streaming and stream=true
                (server-sent events, chunks relayed as the model produces them, ending with
                data [DONE]). Same cache, quota, budgets and single flight as /api/gpt/qna; the
                response header X-Aira-Cached says whether the answer came from the cache, and
                X-Aira-Overhead-Ms how many milliseconds the request spent in Aira, the wait for
                the model left out. Aira's extensions: the request header X-Aira-Conversation
                names a conversation (the proxy puts its history in front of the messages and
                keeps the new turn); a stream's last chunk carries "aira": {cached,
                conversationId, quota: {used, limit, resetAt}, overheadMs}.
              security: [{bearer: []}]
              parameters: [{name: X-Aira-Conversation, in: header, schema: {type: string, pattern: "^[A-Za-z0-9_-]{1,64}$"}}]
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [messages]
                      properties:
                        model: {type: string}
                        messages:
                          type: array
                          items:
                            type: object
                            properties:
                              role: {type: string}
                              content: {type: string}
                        stream: {type: boolean}
                        temperature: {type: number}
                        top_p: {type: number}
                        max_tokens: {type: integer}
              responses:
                "200":
                  description: A chat.completion object, or text/event-stream of chat.completion.chunk objects
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "429": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
                "504": {$ref: "#/components/responses/Error"}
          /api/posts:
            get:
              summary: "Posts: ?sort=newest|liked, ?author=me|<user id>, ?tag=, ?limit=1–100, and ?cursor= (keyset) or ?page=N (page numbers with total and pages). Headers X-Aira-Cache (hit, miss, bypass) and X-Aira-Read (cache, replica, primary)"
              responses:
                "200": {description: A page of posts, content: {application/json: {schema: {$ref: "#/components/schemas/PostPage"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
            post:
              summary: Write a post
              security: [{bearer: []}]
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/PostBody"}}}}
              responses:
                "201": {description: Created, content: {application/json: {schema: {$ref: "#/components/schemas/Post"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/posts/{id}:
            get:
              summary: One post, whole (liked tells whether the caller likes it)
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Post"}}}}
                "404": {$ref: "#/components/responses/Error"}
            patch:
              summary: Change title, body or tags (author only)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/PostBody"}}}}
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Post"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Delete (author or admin)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "204": {description: Deleted}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/posts/{id}/like:
            put:
              summary: Like (idempotent)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Likes"}}}}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Unlike (idempotent)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Likes"}}}}
                "404": {$ref: "#/components/responses/Error"}
          /api/search:
            get:
              summary: "Full-text search over posts' titles and bodies: ?keyword= (every word must match, words of 2+ characters also as prefixes), ?sort=relevance|newest, ?author=, ?tag=, ?limit=, ?cursor=. When no word matches, titles similar to the keyword (matched: similar)"
              responses:
                "200": {description: A page of hits, content: {application/json: {schema: {$ref: "#/components/schemas/SearchPage"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/playlists:
            get:
              summary: "Playlists, newest first: ?owner=me|<user id> (the owner sees private ones too), else every public playlist; ?limit=1–100, ?cursor="
              responses:
                "200": {description: "A page of Playlist", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "400": {$ref: "#/components/responses/Error"}
            post:
              summary: Create a playlist (private unless public is true)
              security: [{bearer: []}]
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/PlaylistBody"}}}}
              responses:
                "201": {description: Created, content: {application/json: {schema: {$ref: "#/components/schemas/Playlist"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/playlists/{id}:
            get:
              summary: A playlist; a private one is 404 for everyone but its owner and admins
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Playlist"}}}}
                "404": {$ref: "#/components/responses/Error"}
            patch:
              summary: Change title, description or visibility (owner only)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/PlaylistBody"}}}}
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Playlist"}}}}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Delete (owner or admin)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "204": {description: Deleted}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/playlists/{id}/videos:
            get:
              summary: "The playlist's videos in order; ?limit=, ?cursor="
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: "A page of {position, addedAt, video}", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "404": {$ref: "#/components/responses/Error"}
          /api/playlists/{id}/videos/{videoId}:
            put:
              summary: Append a video (owner only; already there is no change)
              security: [{bearer: []}]
              parameters:
                - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
                - {name: videoId, in: path, required: true, schema: {type: string, format: uuid}}
              responses:
                "204": {description: Added}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Remove a video (owner only)
              security: [{bearer: []}]
              parameters:
                - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
                - {name: videoId, in: path, required: true, schema: {type: string, format: uuid}}
              responses:
                "204": {description: Removed}
                "403": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
          /api/videos:
            get:
              summary: "The caller's own videos, newest first (?owner=me, ?limit=, ?cursor=)"
              security: [{bearer: []}]
              responses:
                "200": {description: "A page of Video", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
            post:
              summary: "Upload a video or image as the raw request body (?title=); the type is sniffed from the content; a thumbnail is made in the background"
              security: [{bearer: []}]
              parameters: [{name: title, in: query, schema: {type: string, maxLength: 200}}]
              requestBody: {required: true, content: {application/octet-stream: {schema: {type: string, format: binary}}}}
              responses:
                "201": {description: "Stored, status processing", content: {application/json: {schema: {$ref: "#/components/schemas/Video"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "413": {$ref: "#/components/responses/Error"}
                "415": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
                "507": {description: "The media storage is full (insufficient_storage, Retry-After); nothing was kept", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
          /api/videos/{id}:
            get:
              summary: A video with its processing status and thumbnail URL
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: OK, content: {application/json: {schema: {$ref: "#/components/schemas/Video"}}}}
                "404": {$ref: "#/components/responses/Error"}
          /api/videos/{id}/thumbnail:
            get:
              summary: The thumbnail (JPEG), once the video is ready
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: JPEG, content: {image/jpeg: {schema: {type: string, format: binary}}}}
                "404": {$ref: "#/components/responses/Error"}
          /api/videos/{id}/media:
            get:
              summary: "The uploaded file itself, for the player (a single Range: bytes=… gives 206)"
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: The file, with its sniffed media type}
                "206": {description: The requested byte range}
                "404": {$ref: "#/components/responses/Error"}
          /api/videos/{id}/play:
            post:
              summary: Count a play (token optional)
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: "{plays}"}
                "404": {$ref: "#/components/responses/Error"}
          /api/videos/{id}/like:
            put:
              summary: Like (idempotent)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: "{likes, liked}"}
                "404": {$ref: "#/components/responses/Error"}
            delete:
              summary: Unlike (idempotent)
              security: [{bearer: []}]
              parameters: [{name: id, in: path, required: true, schema: {type: string, format: uuid}}]
              responses:
                "200": {description: "{likes, liked}"}
                "404": {$ref: "#/components/responses/Error"}
          /api/admin/audit:
            get:
              summary: "The audit log, newest first (admins): ?userId=, ?type=, ?from=, ?to= (ISO 8601), ?limit=, ?cursor="
              security: [{bearer: []}]
              responses:
                "200": {description: "A page of AuditEntry", content: {application/json: {schema: {$ref: "#/components/schemas/Page"}}}}
                "400": {$ref: "#/components/responses/Error"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /api/admin/queues:
            get:
              summary: "Every consumer queue (admins): ready, unacked, consumers, in retry tiers, dead letters, publish/deliver/ack rates per second (RabbitMQ's management API)"
              security: [{bearer: []}]
              responses:
                "200": {description: "{at, items: [{queue, ready, unacked, consumers, retrying, deadLetters, publishRate, deliverRate, ackRate}]}"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/dlq:
            get:
              summary: "Every dead-letter queue of the topology with its depth and the oldest message's age (admins)"
              security: [{bearer: []}]
              responses:
                "200": {description: "{items: [{queue, depth, oldestAgeSeconds}]}"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/dlq/{queue}:
            get:
              summary: "A queue's dead letters with headers and body, and their groups by error (admins); ?type=, ?error= (part of the error), ?since= (ISO 8601), ?limit= 1-2000 (default 200). Nothing is removed."
              security: [{bearer: []}]
              parameters: [{name: queue, in: path, required: true, schema: {type: string}, description: "a consumer queue (Q) or its DLQ (Q.dlq)"}]
              responses:
                "200": {description: "{queue, deadLetterQueue, items: [{id, type, attempts, disposition, error, errorType, firstFailedAt, lastFailedAt, originalRoutingKey, queue, headers, body}], groups: [{errorType, error, count, ids, firstFailedAt, lastFailedAt}]}"}
                "400": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/dlq/{queue}/replay:
            post:
              summary: "Move dead letters back to their queue, each confirmed before it leaves the DLQ (admins); audit event dlq.replayed"
              description: |
                Body: {all: true} or a filter {ids, type, error, since}, plus dryRun (count and list
                without moving), limit, and rate (messages per second; default AIRA_DLQ_REPLAY_RATE,
                at most AIRA_DLQ_REPLAY_MAX_RATE). Returns {queue, target, scanned, matched, moved, dryRun, incomplete}.
              security: [{bearer: []}]
              parameters: [{name: queue, in: path, required: true, schema: {type: string}}]
              requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
              responses:
                "200": {description: "The replay report"}
                "400": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/dlq/{queue}/purge:
            post:
              summary: "Delete dead letters for good (admins): {all: true} or {ids}, with confirm: true; audit event dlq.purged"
              security: [{bearer: []}]
              parameters: [{name: queue, in: path, required: true, schema: {type: string}}]
              requestBody: {required: true, content: {application/json: {schema: {type: object, required: [confirm], properties: {all: {type: boolean}, ids: {type: array, items: {type: string}}, confirm: {type: boolean}}}}}}
              responses:
                "200": {description: "{queue, deleted}"}
                "400": {$ref: "#/components/responses/Error"}
                "404": {$ref: "#/components/responses/Error"}
                "503": {$ref: "#/components/responses/Error"}
          /api/admin/analysis/runs:
            get:
              summary: "The latest nightly analysis runs with their progress and model quality (admins); ?limit= 1-365"
              security: [{bearer: []}]
              responses:
                "200": {description: "{items: [AnalysisRun]}"}
                "401": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
            post:
              summary: "Run (or re-run) a day's analysis {day: yyyy-MM-dd, timezone?}: the next analyzer check picks it up (admins); audit event analysis.requested"
              security: [{bearer: []}]
              requestBody: {required: true, content: {application/json: {schema: {type: object, required: [day], properties: {day: {type: string, format: date}, timezone: {type: string}}}}}}
              responses:
                "202": {description: "The requested run"}
                "400": {$ref: "#/components/responses/Error"}
                "403": {$ref: "#/components/responses/Error"}
          /openapi.yaml:
            get:
              summary: This document
              responses:
                "200": {description: OpenAPI 3 YAML}
          /health/live:
            get:
              summary: Liveness
              responses:
                "200": {description: Live}
          /health/ready:
            get:
              summary: Readiness (broker, Redis, PostgreSQL; 503 while shutting down)
              responses:
                "200": {description: Ready}
                "503": {description: Not ready}
          /metrics:
            get:
              summary: Prometheus metrics
              responses:
                "200": {description: Prometheus text format}

        """
}
