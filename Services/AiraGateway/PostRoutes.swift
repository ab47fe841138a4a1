import AiraContracts
import AiraCore
import AiraMessaging
import AiraPostgres
import Foundation
import Hummingbird

/// `/api/posts` and `/api/search`: posts users write and everyone reads. Lists page by keyset
/// (a cursor) or by page number (anchors every 1,000 rows, so no OFFSET reaches further than
/// that); search is PostgreSQL's full text search with a trigram fallback for titles. Reads go
/// through ``PostsCache`` and the read replica. docs/search.md explains the queries and indexes.
struct PostRoutes: Sendable {
    let content: ContentContext
    let cache: PostsCache
    let bodyLimit: Int
    /// Whether the RUM index `posts_search_rum` exists (migration 0007): then "newest matches"
    /// come from it in order; otherwise from the GIN index, fetched and sorted.
    var newestFromIndex = false
    let anchorScans = Coalescer<[String]>()
    let frequencies = WordFrequencies()

    struct WriteBody: Decodable {
        var title: String?
        var body: String?
        var tags: [String]?
    }

    /// One post, whole.
    struct PostView: Encodable, Sendable {
        var id: String
        var authorId: String
        var title: String
        var body: String
        var tags: [String]
        var likes: Int
        /// Whether the caller likes it (absent for anonymous readers).
        var liked: Bool?
        var createdAt: Date
        var updatedAt: Date
    }

    /// A post in a list: what a list shows, not the whole body.
    struct PostSummary: Encodable, Sendable {
        var id: String
        var authorId: String
        var title: String
        var excerpt: String
        var tags: [String]
        var likes: Int
        var createdAt: Date
    }

    struct ListBody: Encodable, Sendable {
        var items: [PostSummary]
        var nextCursor: String?
        /// With `?page=`: the page, how many there are, and how many posts match.
        var page: Int?
        var pages: Int?
        var total: Int?
    }

    /// A run of snippet text; `match` marks the words that matched the query.
    struct Segment: Encodable, Sendable {
        var text: String
        var match: Bool
    }

    struct SearchHit: Encodable, Sendable {
        var id: String
        var authorId: String
        var title: String
        var snippet: [Segment]
        var tags: [String]
        var likes: Int
        var createdAt: Date
        var score: Double
    }

    struct SearchBody: Encodable, Sendable {
        var items: [SearchHit]
        var nextCursor: String?
        /// `words` (full text) or `similar` (no word matched; titles similar to the keyword).
        var matched: String
    }

    static let excerptLength = 240
    /// Relevance ranks the newest this many matches (docs/search.md: ranking every match of a
    /// common word would read tens of thousands of rows; docs/benchmarks.md has the cost).
    static let rankCandidates = 500
    /// Page-number anchors: one every this many rows.
    static let anchorStride = 1_000

    // MARK: - Validation

    static func validTitle(_ raw: String) throws -> String {
        let t = raw.trimmed
        guard !t.isEmpty, t.count <= 200 else { throw APIError.badRequest("invalid_request", "'title' must be 1–200 characters") }
        guard !t.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.badRequest("invalid_request", "'title' must not contain control characters")
        }
        return t
    }

    static func validBody(_ raw: String) throws -> String {
        guard !raw.trimmed.isEmpty, raw.count <= 20_000 else { throw APIError.badRequest("invalid_request", "'body' must be 1–20000 characters") }
        guard !raw.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !"\n\t\r".unicodeScalars.contains($0) }) else {
            throw APIError.badRequest("invalid_request", "'body' must not contain control characters other than newline and tab")
        }
        return raw
    }

    /// Tags: at most 8, each 1–32 letters, digits, `-` or `_`; lower-cased, duplicates dropped.
    static func validTags(_ raw: [String]) throws -> [String] {
        var seen: [String] = []
        for tag in raw {
            let t = tag.trimmed.lowercased()
            guard (1...32).contains(t.count), t.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "-" || $0 == "_" }) else {
                throw APIError.badRequest("invalid_request", "each tag must be 1–32 letters, digits, '-' or '_' (got '\(tag.prefix(40))')")
            }
            if !seen.contains(t) { seen.append(t) }
        }
        guard seen.count <= 8 else { throw APIError.badRequest("invalid_request", "at most 8 tags") }
        return seen
    }

    static func validTag(_ raw: String) throws -> String {
        guard let tag = try Self.validTags([raw]).first else { throw APIError.badRequest("invalid_request", "'tag' is empty") }
        return tag
    }

    /// The keyword's words: runs of letters and digits, lower-cased, at most 8.
    static func words(_ keyword: String) -> [String] {
        var words: [String] = []
        var current = ""
        for scalar in keyword.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return Array(words.prefix(8))
    }

    /// The full-text query for a keyword: all its words required, each also matching as a prefix
    /// when it is long enough to narrow anything down — 3 letters, or 2 in a script whose
    /// characters are syllables (Hangul, and any other non-Latin one): `le:*` would match every
    /// word starting with "le", `커피:*` finds 커피를 and 커피는. Nil when it has no word.
    static func tsquery(_ keyword: String) -> String? {
        let terms = Self.terms(keyword)
        guard !terms.isEmpty else { return nil }
        return terms.map { "'\($0.word.replacingOccurrences(of: "'", with: "''"))'" + ($0.prefix ? ":*" : "") }.joined(separator: " & ")
    }

    /// The keyword's words, each with whether it also matches as a prefix.
    static func terms(_ keyword: String) -> [(word: String, prefix: Bool)] {
        Self.words(keyword).map { word in
            (word, word.count >= 3 || (word.count == 2 && !word.unicodeScalars.allSatisfy(\.isASCII)))
        }
    }

    /// Above this share of posts, a query's newest matches are found faster by walking
    /// `posts_newest` than from the RUM index, which sorts every match first: measured crossing
    /// points, ~4 % for 500 relevance candidates and ~1 % for a page of 20 (docs/search.md).
    static func walkAbove(relevance: Bool) -> Double { relevance ? 0.04 : 0.01 }

    // MARK: - Writes

    func create(_ request: Request, context: GatewayContext) async throws -> Response {
        let user = try self.content.activeUser(context)
        let body = try await JSONBody.decode(WriteBody.self, from: request, limit: self.bodyLimit)
        guard let rawTitle = body.title else { throw APIError.badRequest("invalid_request", "'title' is required") }
        guard let rawBody = body.body else { throw APIError.badRequest("invalid_request", "'body' is required") }
        let (title, text, tags) = (try Self.validTitle(rawTitle), try Self.validBody(rawBody), try Self.validTags(body.tags ?? []))
        try await self.content.requireNotSuspended(user.id, context)
        let id = UUID()
        guard let row = try await self.content.query("""
            WITH p AS (INSERT INTO posts (id, author_id, title, body, tags)
                       VALUES (\(id), \(user.id), \(title), \(text), \(PostgresArray(tags.map { $0 }))::text[]) RETURNING *)
            SELECT \(unsafeRaw: Self.columns(liked: "false")) FROM p
            """, context).first else { throw APIError.unavailable("the post was not stored, try again") }
        let view = try Self.view(row, liked: nil)
        await self.cache.invalidate(after: user.id, context)
        await self.content.audit("post_created", user: user.id, context, ["postId": view.id, "tags": tags.joined(separator: ",")])
        var response = JSONResponse.make(.created, view)
        response.headers[.location] = "/api/posts/\(view.id)"
        return response
    }

    func update(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "post")
        let body = try await JSONBody.decode(WriteBody.self, from: request, limit: self.bodyLimit)
        let title = try body.title.map(Self.validTitle)
        let text = try body.body.map(Self.validBody)
        let tags = try body.tags.map(Self.validTags)
        guard title != nil || text != nil || tags != nil else {
            throw APIError.badRequest("invalid_request", "send at least one of 'title', 'body', 'tags'")
        }
        let user = try await self.owned(id, context, allowAdmin: false)
        guard let row = try await self.content.query("""
            WITH p AS (UPDATE posts SET title = coalesce(\(title), title), body = coalesce(\(text), body),
                                        tags = coalesce(\(tags.map { PostgresArray($0) })::text[], tags), updated_at = now()
                       WHERE id = \(id) RETURNING *)
            SELECT \(unsafeRaw: Self.columns(liked: "NULL::boolean")),
                   EXISTS (SELECT 1 FROM post_likes l WHERE l.post_id = p.id AND l.user_id = \(user)) AS liked_by_caller FROM p
            """, context).first else { throw APIError.notFound("post") }
        let view = try Self.view(row, liked: try row.decode("liked_by_caller", as: Bool.self))
        await self.cache.invalidate(after: user, context)
        var changed: [String] = []
        if title != nil { changed.append("title") }
        if text != nil { changed.append("body") }
        if tags != nil { changed.append("tags") }
        await self.content.audit("post_updated", user: user, context, ["postId": view.id, "changed": changed.joined(separator: ",")])
        return JSONResponse.make(.ok, view)
    }

    func delete(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "post")
        let user = try await self.owned(id, context, allowAdmin: true)
        guard let row = try await self.content.query("DELETE FROM posts WHERE id = \(id) RETURNING author_id", context).first else {
            throw APIError.notFound("post")
        }
        await self.cache.invalidate(after: user, context)
        await self.content.audit("post_deleted", user: user, context, ["postId": id.lowercasedString, "authorId": try row.decode("author_id")])
        return Response(status: .noContent)
    }

    /// The caller, if they may change post `id`: 404 when it does not exist, 403 when it is not theirs.
    private func owned(_ id: UUID, _ context: GatewayContext, allowAdmin: Bool) async throws -> UUID {
        let user = try self.content.activeUser(context)
        guard let row = try await self.content.query("SELECT author_id FROM posts WHERE id = \(id)", context).first else {
            throw APIError.notFound("post")
        }
        let author: UUID = try row.decode("author_id")
        guard author == user.id || (allowAdmin && user.admin) else {
            throw APIError.forbidden(allowAdmin ? "only the author or an admin can delete this post" : "only the author can change this post")
        }
        try await self.content.requireNotSuspended(user.id, context)
        return user.id
    }

    struct LikeBody: Encodable, Sendable {
        var likes: Int
        var liked: Bool
    }

    /// `PUT /api/posts/{id}/like` and `DELETE …/like`: idempotent; the count moves only on a change.
    func like(_ liked: Bool) -> @Sendable (Request, GatewayContext) async throws -> Response {
        { request, context in
            let id = try ContentContext.pathID(context, what: "post")
            let user = try self.content.activeUser(context)
            try await self.content.requireNotSuspended(user.id, context)
            guard let result = try await self.content.setLike(liked, item: id, user: user.id, table: "posts", likes: "post_likes",
                                                               itemColumn: "post_id", context) else { throw APIError.notFound("post") }
            if result.changed {
                await self.cache.invalidate(after: user.id, context)
                await self.content.audit(liked ? "post_liked" : "post_unliked", user: user.id, context, ["postId": id.lowercasedString])
            }
            return JSONResponse.make(.ok, LikeBody(likes: result.likes, liked: liked))
        }
    }

    // MARK: - Reads

    /// The columns of a ``PostView`` for `FROM posts p` / a CTE named `p`.
    private static func columns(liked: String) -> String {
        """
        p.id, p.author_id, p.title, p.body, array_to_string(p.tags, ',') AS tags, p.like_count, p.created_at, p.updated_at, \(liked) AS liked
        """
    }

    private static func tags(_ row: PostgresRow) throws -> [String] {
        let text: String = try row.decode("tags")
        return text.isEmpty ? [] : text.split(separator: ",").map(String.init)
    }

    private static func view(_ row: PostgresRow, liked: Bool?) throws -> PostView {
        let stored = try row.decodeOptional("liked", as: Bool.self)
        return PostView(id: try row.decode("id"), authorId: try row.decode("author_id"), title: try row.decode("title"),
                 body: try row.decode("body"), tags: try Self.tags(row), likes: try row.decode("like_count"),
                 liked: liked ?? stored, createdAt: try row.decode("created_at"),
                 updatedAt: try row.decode("updated_at"))
    }

    func get(_ request: Request, context: GatewayContext) async throws -> Response {
        let id = try ContentContext.pathID(context, what: "post")
        let caller = context.callerID
        let liked = caller == nil ? "NULL::boolean" : "EXISTS (SELECT 1 FROM post_likes l WHERE l.post_id = p.id AND l.user_id = $2)"
        let query = PostgresQuery(unsafeSQL: "SELECT \(Self.columns(liked: liked)) FROM posts p WHERE p.id = $1",
                                  binds: caller == nil ? [id] : [id, caller!])
        let fresh = await self.content.wroteRecently(caller, context)
        let (result, target) = try await self.content.read(query, context, primaryOnly: fresh)
        guard let row = result.first else { throw APIError.notFound("post") }
        var response = JSONResponse.make(.ok, try Self.view(row, liked: nil))
        response.headers[.airaRead] = target.rawValue
        return response
    }

    enum Sort: String {
        case newest, liked

        var order: String {
            switch self {
            case .newest: "p.created_at DESC, p.id DESC"
            case .liked: "p.like_count DESC, p.created_at DESC, p.id DESC"
            }
        }

        /// The sort key of a row, in cursor form.
        var keyColumns: String {
            switch self {
            case .newest: "(extract(epoch FROM p.created_at) * 1000000)::bigint AS k_us, p.id AS k_id"
            case .liked: "p.like_count AS k_likes, (extract(epoch FROM p.created_at) * 1000000)::bigint AS k_us, p.id AS k_id"
            }
        }

        var keyNames: [String] { self == .newest ? ["k_us", "k_id"] : ["k_likes", "k_us", "k_id"] }

        /// Rows after `key` in this order; appends its binds.
        func after(_ key: [String], binds: inout [(any PostgresBindable)?]) throws -> String {
            let invalid = APIError.badRequest("invalid_cursor", "'cursor' is not one this API gave out")
            guard key.count == self.keyNames.count, let id = UUID(text: key.last!), let us = Int64(key[key.count - 2]) else { throw invalid }
            let at = "'epoch'::timestamptz + $\(binds.count + (self == .liked ? 2 : 1)) * interval '1 microsecond'"
            switch self {
            case .newest:
                binds += [us, id]
                return "(p.created_at, p.id) < (\(at), $\(binds.count))"
            case .liked:
                guard let likes = Int64(key[0]) else { throw invalid }
                binds += [likes, us, id]
                return "(p.like_count, p.created_at, p.id) < ($\(binds.count - 2), \(at), $\(binds.count))"
            }
        }
    }

    struct Filters {
        var author: UUID?
        var tag: String?

        init(_ request: Request, context: GatewayContext) throws {
            let query = request.uri.queryParameters
            if let raw = query.get("author") {
                if raw == "me" {
                    guard let caller = context.callerID else { throw APIError.unauthenticated("'author=me' needs an access token") }
                    self.author = caller
                } else {
                    guard let id = UUID(text: raw) else { throw APIError.badRequest("invalid_request", "'author' must be 'me' or a user id") }
                    self.author = id
                }
            }
            if let raw = query.get("tag") { self.tag = try PostRoutes.validTag(raw) }
        }

        var cacheKey: String { "\(self.author?.lowercasedString ?? "")|\(self.tag ?? "")" }

        func sql(_ binds: inout [(any PostgresBindable)?]) -> String {
            var sql = ""
            if let author = self.author {
                binds.append(author)
                sql += " AND p.author_id = $\(binds.count)"
            }
            if let tag = self.tag {
                binds.append(PostgresArray([tag]))
                sql += " AND p.tags @> $\(binds.count)::text[]"
            }
            return sql
        }
    }

    private static let summaryColumns = """
        p.id, p.author_id, p.title, left(p.body, \(excerptLength)) AS excerpt, array_to_string(p.tags, ',') AS tags, p.like_count, p.created_at
        """

    private static func summary(_ row: PostgresRow) throws -> PostSummary {
        PostSummary(id: try row.decode("id"), authorId: try row.decode("author_id"), title: try row.decode("title"),
                    excerpt: try row.decode("excerpt"), tags: try Self.tags(row), likes: try row.decode("like_count"),
                    createdAt: try row.decode("created_at"))
    }

    /// `GET /api/posts?sort=newest|liked&author=&tag=&limit=&cursor=` or `…&page=N`.
    func list(_ request: Request, context: GatewayContext) async throws -> Response {
        let query = request.uri.queryParameters
        let pageParts = query.get("sort") == "liked" ? 3 : 2
        let page = try Page(request, parts: pageParts)
        guard let sort = Sort(rawValue: query.get("sort") ?? "newest") else {
            throw APIError.badRequest("invalid_request", "'sort' must be 'newest' or 'liked'")
        }
        let filters = try Filters(request, context: context)
        var requestedPage: Int?
        if let raw = query.get("page") {
            guard let n = Int(raw), (1...100_000).contains(n) else { throw APIError.badRequest("invalid_request", "'page' must be 1–100000") }
            guard page.after == nil else { throw APIError.badRequest("invalid_request", "send 'page' or 'cursor', not both") }
            requestedPage = n
        }
        let pageNumber = requestedPage
        // The first pages are the hot ones; deeper pages are read, not cached.
        let cacheable = page.after == nil && (pageNumber ?? 1) <= 5
        let key = "list|\(sort.rawValue)|\(filters.cacheKey)|\(page.limit)|\(pageNumber ?? 0)"
        return try await self.cache.read(cacheable ? key : nil, context) { primaryOnly in
            var binds: [(any PostgresBindable)?] = []
            var sql = "SELECT \(Self.summaryColumns), \(sort.keyColumns) FROM posts p WHERE true" + filters.sql(&binds)
            var body = ListBody(items: [], nextCursor: nil)
            var offset = 0
            var target = ReadTarget.primary
            if let pageNumber {
                let skip = (pageNumber - 1) * page.limit
                let index = skip / Self.anchorStride
                let (total, key) = try await self.anchor(index, sort, filters, context, primaryOnly: primaryOnly)
                body.page = pageNumber
                body.total = total
                body.pages = max(1, (total + page.limit - 1) / page.limit)
                guard skip < total else { return (try MessageCoding.encode(body), target) }
                if index > 0 {
                    guard let key else { return (try MessageCoding.encode(body), target) }
                    sql += " AND " + (try sort.after(key, binds: &binds))
                }
                offset = skip - index * Self.anchorStride
            } else if let after = page.after {
                sql += " AND " + (try sort.after(after, binds: &binds))
            }
            sql += " ORDER BY \(sort.order) LIMIT \(page.limit + 1)"
            if offset > 0 { sql += " OFFSET \(offset)" }
            let result: PostgresResult
            (result, target) = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context, primaryOnly: primaryOnly)
            let (rows, next) = page.slice(result.rows) { row in sort.keyNames.map { (try? row.decode($0, as: String.self)) ?? "" } }
            body.items = try rows.map(Self.summary)
            body.nextCursor = next
            return (try MessageCoding.encode(body), target)
        }
    }

    /// How many posts a list has, and where page N starts: after anchor `(N-1)·limit / 1000`
    /// (the sort key of every 1,000th row), skipping the rest (at most 999) with OFFSET. So no
    /// page number costs an OFFSET deeper than 999, at any depth.
    ///
    /// Kept in Redis for a minute per list as one Redis list `[total, anchor 1, anchor 2, …]`, so
    /// a request reads two entries, not all of them; page numbers drift by the posts written
    /// meanwhile, as page numbers do. Computed by one pass over the list's index, once at a time
    /// per gateway (``Coalescer``): a cold cache under load does not start the same scan a
    /// hundred times.
    private func anchor(_ index: Int, _ sort: Sort, _ filters: Filters, _ context: GatewayContext,
                        primaryOnly: Bool) async throws -> (total: Int, key: [String]?) {
        let redisKey = "aira:posts:anchors:\(sort.rawValue)|\(filters.cacheKey)"
        if !primaryOnly, let cached = try? await self.content.redis.pipeline([["LINDEX", redisKey, "0"], ["LINDEX", redisKey, String(index)]]),
           cached.count == 2, let total = cached[0].string.flatMap(Int.init) {
            return (total, index == 0 ? nil : cached[1].string.map { $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) })
        }
        let all = try await self.anchorScans.run(redisKey + (primaryOnly ? "|primary" : "")) {
            var binds: [(any PostgresBindable)?] = []
            let filter = filters.sql(&binds)
            // Every 1,000th row's key, and the last row (which carries the total).
            let sql = """
                SELECT n, total, \(sort.keyNames.joined(separator: ", ")) FROM (
                    SELECT \(sort.keyColumns), row_number() OVER (ORDER BY \(sort.order)) AS n, count(*) OVER () AS total
                    FROM posts p WHERE true\(filter)
                ) s WHERE n % \(Self.anchorStride) = 0 OR n = total ORDER BY n
                """
            let rows = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context, primaryOnly: primaryOnly).0.rows
            let total: Int = try rows.last?.decode("total") ?? 0
            let keys = rows.filter { ((try? $0.decode("n", as: Int.self)) ?? 0) % Self.anchorStride == 0 }
                .map { row in sort.keyNames.map { (try? row.decode($0, as: String.self)) ?? "" }.joined(separator: "\n") }
            let scratch = redisKey + ":" + UUID().lowercasedString
            _ = try? await self.content.redis.pipeline([["RPUSH", scratch, String(total)] + keys, ["PEXPIRE", scratch, "60000"],
                                                        ["RENAME", scratch, redisKey]])
            return [String(total)] + keys
        }
        let total = Int(all[0]) ?? 0
        return (total, index == 0 || index >= all.count ? nil : all[index].split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
    }

    // MARK: - Search

    /// `GET /api/search?keyword=&sort=relevance|newest&author=&tag=&limit=&cursor=`.
    func search(_ request: Request, context: GatewayContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard let keyword = query.get("keyword") ?? query.get("q"), !keyword.trimmed.isEmpty else {
            throw APIError.badRequest("invalid_request", "'keyword' is required")
        }
        guard keyword.count <= 200 else { throw APIError.badRequest("invalid_request", "'keyword' must be at most 200 characters") }
        guard let tsquery = Self.tsquery(keyword) else {
            throw APIError.badRequest("invalid_request", "'keyword' must contain a letter or a digit")
        }
        let relevance: Bool
        switch query.get("sort") ?? "relevance" {
        case "relevance": relevance = true
        case "newest": relevance = false
        default: throw APIError.badRequest("invalid_request", "'sort' must be 'relevance' or 'newest'")
        }
        let page = try Page(request, parts: 2)
        let filters = try Filters(request, context: context)
        let key = "search|\(relevance ? "r" : "n")|\(filters.cacheKey)|\(page.limit)|\(tsquery)"
        // Newest matches from the RUM index for rare words, by walking posts_newest for common ones.
        if self.newestFromIndex { self.frequencies.refreshIfStale(self.content, logger: context.logger) }
        let fromIndex = self.newestFromIndex && self.frequencies.share(of: Self.terms(keyword)) < Self.walkAbove(relevance: relevance)
        return try await self.cache.read(page.after == nil ? key : nil, context) { primaryOnly in
            var binds: [(any PostgresBindable)?] = [tsquery, "MaxFragments=1, MaxWords=24, MinWords=12, StartSel=\u{1}, StopSel=\u{2}"]
            let filter = filters.sql(&binds)
            var sql: String
            if relevance {
                var after = ""
                if let (score, id) = try page.after({ Double($0) }, { UUID(text: $0) }) {
                    binds += [score, id]
                    after = " WHERE (c.score, c.id) < ($\(binds.count - 1)::float8, $\(binds.count)::uuid)"
                }
                // RUM: in time order from the index (distance to a far future = newest first).
                let newest = fromIndex ? "p.created_at <=| '2200-01-01'::timestamptz" : "p.created_at DESC, p.id DESC"
                sql = """
                    WITH c AS (SELECT m.id, ts_rank_cd(m.search, to_tsquery('simple', $1))::float8 AS score
                          FROM (SELECT p.id, p.search FROM posts p WHERE p.search @@ to_tsquery('simple', $1)\(filter)
                                ORDER BY \(newest) LIMIT \(Self.rankCandidates)) m),
                    top AS (SELECT c.id, c.score FROM c\(after) ORDER BY c.score DESC, c.id DESC LIMIT \(page.limit + 1))
                    SELECT p.id, p.author_id, p.title, array_to_string(p.tags, ',') AS tags, p.like_count, p.created_at,
                           top.score, top.score::text AS k_score, ts_headline('simple', p.body, to_tsquery('simple', $1), $2) AS snippet
                    FROM top JOIN posts p ON p.id = top.id ORDER BY top.score DESC, p.id DESC
                    """
            } else {
                var after = ""
                // RUM: in time order from the cursor's time down (rows at the very same microsecond
                // come in the index's order, not by id); GIN: fetched and sorted.
                var newest = fromIndex ? "p.created_at <=| '2200-01-01'::timestamptz" : "p.created_at DESC, p.id DESC"
                if let (us, id) = try page.after({ Int64($0) }, { UUID(text: $0) }) {
                    binds += [us, id]
                    let at = "'epoch'::timestamptz + $\(binds.count - 1) * interval '1 microsecond'"
                    after = " AND (p.created_at, p.id) < (\(at), $\(binds.count))"
                    if fromIndex { newest = "p.created_at <=| (\(at))" }
                }
                sql = """
                    WITH top AS (SELECT p.id, ts_rank_cd(p.search, to_tsquery('simple', $1))::float8 AS score FROM posts p
                                 WHERE p.search @@ to_tsquery('simple', $1)\(filter)\(after)
                                 ORDER BY \(newest) LIMIT \(page.limit + 1))
                    SELECT p.id, p.author_id, p.title, array_to_string(p.tags, ',') AS tags, p.like_count, p.created_at,
                           top.score, (extract(epoch FROM p.created_at) * 1000000)::bigint AS k_us,
                           ts_headline('simple', p.body, to_tsquery('simple', $1), $2) AS snippet
                    FROM top JOIN posts p ON p.id = top.id ORDER BY p.created_at DESC, p.id DESC
                    """
            }
            var (result, target) = try await self.content.read(PostgresQuery(unsafeSQL: sql, binds: binds), context, primaryOnly: primaryOnly)
            var matched = "words"
            let words = Self.words(keyword)
            if result.rows.isEmpty && page.after == nil && words.count == 1 && words[0].count >= 4 {
                // One word that matched nothing: titles with a word like it (a typo), best first, one page.
                var similarBinds: [(any PostgresBindable)?] = [keyword.trimmed]
                let similarFilter = filters.sql(&similarBinds)
                (result, target) = try await self.content.read(PostgresQuery(unsafeSQL: """
                    SELECT p.id, p.author_id, p.title, array_to_string(p.tags, ',') AS tags, p.like_count, p.created_at,
                           word_similarity($1, p.title)::float8 AS score, left(p.body, \(Self.excerptLength)) AS snippet
                    FROM posts p WHERE $1 <% p.title\(similarFilter)
                    ORDER BY score DESC, p.id DESC LIMIT \(page.limit)
                    """, binds: similarBinds), context, primaryOnly: primaryOnly)
                matched = "similar"
            }
            let (rows, next) = matched == "similar" ? (result.rows, nil) : page.slice(result.rows) { row in
                [(try? row.decode(relevance ? "k_score" : "k_us", as: String.self)) ?? "", (try? row.decode("id", as: String.self)) ?? ""]
            }
            let items = try rows.map { row in
                SearchHit(id: try row.decode("id"), authorId: try row.decode("author_id"), title: try row.decode("title"),
                          snippet: Self.segments(try row.decode("snippet")), tags: try Self.tags(row),
                          likes: try row.decode("like_count"), createdAt: try row.decode("created_at"), score: try row.decode("score"))
            }
            return (try MessageCoding.encode(SearchBody(items: items, nextCursor: next, matched: matched)), target)
        }
    }

    /// A `ts_headline` result (matches between U+0001 and U+0002; posts cannot contain either)
    /// as plain-text segments, so clients never have to trust HTML.
    static func segments(_ headline: String) -> [Segment] {
        var out: [Segment] = []
        var current = ""
        var inMatch = false
        for scalar in headline.unicodeScalars {
            if scalar == "\u{1}" || scalar == "\u{2}" {
                if !current.isEmpty { out.append(Segment(text: current, match: inMatch)) }
                current = ""
                inMatch = scalar == "\u{1}"
            } else {
                current.unicodeScalars.append(scalar)
            }
        }
        if !current.isEmpty { out.append(Segment(text: current, match: inMatch)) }
        return out
    }
}

/// Runs one computation per key at a time: callers asking for a key already being computed wait
/// for that computation's result instead of starting their own.
actor Coalescer<Value: Sendable> {
    private var running: [String: Task<Value, any Error>] = [:]

    func run(_ key: String, _ body: @escaping @Sendable () async throws -> Value) async throws -> Value {
        if let task = self.running[key] { return try await task.value }
        let task = Task { try await body() }
        self.running[key] = task
        defer { self.running[key] = nil }
        return try await task.value
    }
}
