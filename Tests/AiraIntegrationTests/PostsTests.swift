import AiraPostgres
import Foundation
import Testing

/// Posts and search through a real gateway against the real PostgreSQL — with the streaming
/// replica scripts/test starts (AIRA_DATABASE_READ_URL) — and Redis. Each test tags its posts with
/// a tag of its own and filters by it, so the posts of other tests (or a seeded million) never
/// change what it sees.
@Suite("Posts, search, the posts cache and the read replica", .serialized, .enabled(if: TestServers.available))
struct PostsTests {
    static var replicaURL: String? { TestServers.environment["AIRA_DATABASE_READ_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// Replica checks every 100 ms, tolerated lag 1 s, read-your-writes window 4 s.
    static func withStack(replica: String? = Self.replicaURL, cacheTTL: String = "30s",
                          _ body: (ServiceStack) async throws -> Void) async throws {
        var env = ["AIRA_RATE_LIMIT_WRITE": "1000/1m", "AIRA_RATE_LIMIT_WRITE_IP": "1000/1m",
                   "AIRA_RATE_LIMIT_READ": "5000/1m", "AIRA_RATE_LIMIT_READ_IP": "5000/1m",
                   "AIRA_READ_REPLICA_CHECK_INTERVAL": "100ms", "AIRA_READ_REPLICA_MAX_LAG": "1s",
                   "AIRA_READ_YOUR_WRITES_WINDOW": "4s", "AIRA_POSTS_CACHE_TTL": cacheTTL]
        env["AIRA_DATABASE_READ_URL"] = replica ?? ""
        try await ServiceStack.with(environment: env) { stack in
            try stack.startWorker("aira-audit-writer", name: "audit", environment: ["AIRA_AUDIT_BATCH_DELAY": "20ms"])
            try await body(stack)
        }
    }

    static func tag(_ prefix: String = "t") -> String { "\(prefix)\(UUID().uuidString.prefix(8).lowercased())" }

    static func post(_ stack: ServiceStack, _ session: ServiceStack.Session, title: String, body: String = "Some text.",
                     tags: [String]) async throws -> String {
        let r = try await stack.call("POST", "/api/posts", json: ["title": title, "body": body, "tags": tags], token: session.access)
        try #require(r.status == 201, "create: \(r)")
        return try #require(r["id"])
    }

    static func items(_ r: ServiceStack.Reply) -> [[String: Any]] { r.json["items"] as? [[String: Any]] ?? [] }
    static func ids(_ r: ServiceStack.Reply) -> [String] { Self.items(r).compactMap { $0["id"] as? String } }

    @Test("create, read, edit and delete: author, other user, admin, anonymous; bad input is a 400 naming the field")
    func lifecycleAndAccess() async throws {
        try await Self.withStack { stack in
            let author = try await ContentTests.user(stack, "author")
            let other = try await ContentTests.user(stack, "other")
            let adminAccount = try await stack.createAdmin()
            let admin = try await stack.login(adminAccount.email, adminAccount.password)
            let tag = Self.tag()
            let created = try await stack.call("POST", "/api/posts", json: ["title": "  First post  ", "body": "Hello\nworld", "tags": [tag, tag.uppercased(), "Swift"]],
                                               token: author.access)
            #expect(created.status == 201)
            let id = try #require(created["id"])
            #expect(created.headers.first(name: "Location") == "/api/posts/\(id)")
            #expect(created["title"] == "First post")
            #expect(created.json["tags"] as? [String] == [tag, "swift"])
            #expect(created["authorId"] == author.userID)

            // Others read the replica: the post is there once it has replayed the write.
            #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
                try await stack.call("GET", "/api/posts/\(id)").status == 200
            })
            let anonymous = try await stack.call("GET", "/api/posts/\(id)")
            #expect(anonymous.status == 200 && anonymous["body"] == "Hello\nworld")
            #expect(anonymous.json["liked"] == nil)
            #expect(try await stack.call("GET", "/api/posts/\(UUID().uuidString.lowercased())").status == 404)
            #expect(try await stack.call("GET", "/api/posts/not-a-uuid").status == 404)

            // Only the author edits; the author or an admin deletes.
            #expect(try await stack.call("PATCH", "/api/posts/\(id)", json: ["title": "x"]).status == 401)
            let byOther = try await stack.call("PATCH", "/api/posts/\(id)", json: ["title": "x"], token: other.access)
            #expect(byOther.status == 403 && byOther.errorCode == "forbidden")
            #expect(try await stack.call("PATCH", "/api/posts/\(id)", json: ["title": "x"], token: admin.access).status == 403)
            let edited = try await stack.call("PATCH", "/api/posts/\(id)", json: ["body": "Edited body"], token: author.access)
            #expect(edited.status == 200 && edited["body"] == "Edited body" && edited["title"] == "First post")
            #expect(edited.json["liked"] as? Bool == false)
            #expect(try await stack.call("DELETE", "/api/posts/\(id)", token: other.access).status == 403)

            // Bad input: 400 with what was wrong, nothing stored.
            let bad: [([String: Any], String)] = [
                (["body": "no title"], "'title' is required"),
                (["title": "no body"], "'body' is required"),
                (["title": "", "body": "x"], "'title' must be 1–200"),
                (["title": String(repeating: "a", count: 201), "body": "x"], "'title' must be 1–200"),
                (["title": "t", "body": String(repeating: "b", count: 20_001)], "'body' must be 1–20000"),
                (["title": "t", "body": "bell \u{7}"], "control characters"),
                (["title": "t", "body": "x", "tags": ["has space"]], "each tag"),
                (["title": "t", "body": "x", "tags": (0..<9).map { "tag\($0)" }], "at most 8 tags"),
                (["title": 5, "body": "x"], "title"),
            ]
            for (json, message) in bad {
                let r = try await stack.call("POST", "/api/posts", json: json, token: author.access)
                #expect(r.status == 400, "\(json): \(r)")
                #expect(r.errorMessage?.contains(message) == true, "\(json): \(r)")
            }
            let malformed = try await stack.call("POST", "/api/posts", rawBody: Array("{\"title\":".utf8), contentType: "application/json",
                                                 token: author.access)
            #expect(malformed.status == 400 && malformed.errorCode == "malformed_json")
            #expect(try await stack.call("PATCH", "/api/posts/\(id)", json: [:], token: author.access).status == 400)

            // The admin deletes it (moderation); then it is gone for everyone.
            #expect(try await stack.call("DELETE", "/api/posts/\(id)", token: admin.access).status == 204)
            #expect(try await stack.call("GET", "/api/posts/\(id)", token: author.access).status == 404)
            #expect(try await stack.call("DELETE", "/api/posts/\(id)", token: author.access).status == 404)

            // Every change is in the audit log.
            let types = ["post_created", "post_updated", "post_deleted"]
            let audited = try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
                let r = try await stack.call("GET", "/api/admin/audit?userId=\(author.userID)", token: admin.access)
                let seen = Set(Self.items(r).compactMap { $0["type"] as? String })
                let deleted = try await stack.call("GET", "/api/admin/audit?userId=\(admin.userID)&type=post_deleted", token: admin.access)
                return seen.isSuperset(of: types.dropLast()) && Self.items(deleted).contains { ($0["attributes"] as? [String: String])?["postId"] == id }
            }
            #expect(audited, "post_created, post_updated and post_deleted recorded")
        }
    }

    @Test("likes are idempotent and counted; most liked sorts by them; lists page by cursor and filter by tag and author")
    func likesListsAndPaging() async throws {
        try await Self.withStack { stack in
            let author = try await ContentTests.user(stack, "author")
            let fans = [try await ContentTests.user(stack, "fan1"), try await ContentTests.user(stack, "fan2")]
            let tag = Self.tag()
            var ids: [String] = []
            for i in 0..<5 { ids.append(try await Self.post(stack, author, title: "Post \(i)", tags: [tag])) }

            for fan in fans {
                for _ in 0..<2 {
                    let r = try await stack.call("PUT", "/api/posts/\(ids[1])/like", token: fan.access)
                    #expect(r.status == 200 && r.json["liked"] as? Bool == true)
                }
            }
            #expect(try await stack.call("PUT", "/api/posts/\(ids[3])/like", token: fans[0].access).json["likes"] as? Int == 1)
            #expect(try await stack.call("GET", "/api/posts/\(ids[1])", token: fans[0].access).json["liked"] as? Bool == true)
            #expect(try await stack.call("GET", "/api/posts/\(ids[1])", token: fans[1].access).json["likes"] as? Int == 2)
            let unliked = try await stack.call("DELETE", "/api/posts/\(ids[1])/like", token: fans[1].access)
            #expect(unliked.json["likes"] as? Int == 1)
            #expect(try await stack.call("DELETE", "/api/posts/\(ids[1])/like", token: fans[1].access).json["likes"] as? Int == 1)
            #expect(try await stack.call("PUT", "/api/posts/\(UUID().uuidString.lowercased())/like", token: fans[0].access).status == 404)

            // Newest first, two per page, by cursor: every post once, in order.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let r = try await stack.call("GET", "/api/posts?tag=\(tag)&limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: author.access)
                #expect(r.status == 200, "\(r)")
                seen += Self.ids(r)
                cursor = r.json["nextCursor"] as? String
            } while cursor != nil && seen.count < 10
            #expect(seen == ids.reversed())

            // Most liked: 2 and 4 have one like each (newest first among equals), then the rest newest first.
            // The fans' likes reach the author's (replica) reads once replayed.
            #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
                Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)&sort=liked&limit=3", token: author.access)).first == ids[3]
            })
            let liked = try await stack.call("GET", "/api/posts?tag=\(tag)&sort=liked&limit=3", token: author.access)
            #expect(Self.ids(liked) == [ids[3], ids[1], ids[4]])
            let rest = try await stack.call("GET", "/api/posts?tag=\(tag)&sort=liked&limit=3&cursor=\(liked.json["nextCursor"] as? String ?? "")",
                                            token: author.access)
            #expect(Self.ids(rest) == [ids[2], ids[0]])

            // Page numbers with total and pages.
            let page2 = try await stack.call("GET", "/api/posts?tag=\(tag)&limit=2&page=2", token: author.access)
            #expect(Self.ids(page2) == [ids[2], ids[1]])
            #expect(page2.json["total"] as? Int == 5 && page2.json["pages"] as? Int == 3 && page2.json["page"] as? Int == 2)
            #expect(Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)&limit=2&page=4", token: author.access)).isEmpty)

            // By author, and the list item carries an excerpt, not the body.
            let mine = try await stack.call("GET", "/api/posts?author=me&tag=\(tag)", token: author.access)
            #expect(Self.ids(mine).count == 5)
            #expect(Self.items(mine).first?["excerpt"] as? String == "Some text." && Self.items(mine).first?["body"] == nil)
            #expect(Self.ids(try await stack.call("GET", "/api/posts?author=\(fans[0].userID)&tag=\(tag)")).isEmpty)

            // Bad parameters.
            for query in ["sort=best", "limit=0", "limit=101", "page=0", "cursor=bm9wZQ", "author=nobody", "tag=has%20space", "page=2&cursor=x"] {
                let r = try await stack.call("GET", "/api/posts?\(query)")
                #expect(r.status == 400, "\(query): \(r)")
            }
            #expect(try await stack.call("GET", "/api/posts?author=me").status == 401)
        }
    }

    @Test("page numbers past the first anchors land on the rows OFFSET would give, without OFFSET scans past 999 rows")
    func pageNumbersAtDepth() async throws {
        try await Self.withStack { stack in
            let author = try await ContentTests.user(stack, "bulk")
            let tag = Self.tag("bulk")
            let db = PostgresClient(configuration: PostgresConfiguration(url: TestServers.databaseURL!, poolSize: 1))
            defer { Task { await db.shutdown() } }
            // 2,500 posts a second apart (and a few sharing a timestamp, so ids break ties).
            try await db.query("""
                INSERT INTO posts (id, author_id, title, body, tags, like_count, created_at)
                SELECT gen_random_uuid(), \(UUID(uuidString: author.userID)!), 'Bulk ' || i, 'Body ' || i, ARRAY[\(tag)],
                       i % 7, timestamptz '2025-01-01' + ((i / 3) * interval '1 second')
                FROM generate_series(1, 2500) AS i
                """)
            // Written behind the API's back (no read-your-writes marker): wait until the replica has them.
            if let replicaURL = Self.replicaURL {
                let replica = PostgresClient(configuration: PostgresConfiguration(url: replicaURL, poolSize: 1))
                defer { Task { await replica.shutdown() } }
                #expect(try await eventually(timeout: .seconds(20), every: .milliseconds(50)) {
                    try await replica.query("SELECT count(*) AS n FROM posts WHERE tags @> ARRAY[\(tag)]").first?.decode("n", as: Int.self) == 2500
                })
            }
            for (sort, order) in [("newest", "created_at DESC, id DESC"), ("liked", "like_count DESC, created_at DESC, id DESC")] {
                for (page, limit) in [(1, 20), (50, 20), (51, 20), (60, 20), (26, 100), (125, 20)] {
                    let expected = try await db.query(PostgresQuery(unsafeSQL: """
                        SELECT id FROM posts WHERE tags @> ARRAY[$1]::text[] ORDER BY \(order) LIMIT \(limit) OFFSET \((page - 1) * limit)
                        """, binds: [tag])).rows.map { try $0.decode("id", as: String.self) }
                    let r = try await stack.call("GET", "/api/posts?tag=\(tag)&sort=\(sort)&limit=\(limit)&page=\(page)")
                    #expect(r.status == 200)
                    #expect(Self.ids(r) == expected, "\(sort) page \(page) × \(limit)")
                    #expect(r.json["total"] as? Int == 2500 && r.json["pages"] as? Int == (2500 + limit - 1) / limit)
                }
            }
        }
    }

    @Test("search: words in title and body (any language), prefixes, ranking, snippets, filters, sort by date, typos, bad keywords")
    func search() async throws {
        try await Self.withStack { stack in
            let author = try await ContentTests.user(stack, "writer")
            let tag = Self.tag()
            // Letters only (a digit would split the word), random enough that posts of earlier runs
            // on a reused database are not near it: 8 letters from a–p.
            let word = "zeb" + String((0..<8).map { _ in Character(UnicodeScalar(UInt8(97 + Int.random(in: 0..<16)))) }) + "quilt"
            let inBody = try await Self.post(stack, author, title: "Weekend notes",
                                             body: "We walked by the river. Then the \(word) appeared <b>bold</b> near the bridge.", tags: [tag])
            let inTitle = try await Self.post(stack, author, title: "All about \(word) \(word)", body: "The \(word) is rare.", tags: [tag, "other"])
            let korean = try await Self.post(stack, author, title: "\(word) 서울 여행", body: "오늘 서울에서 커피를 마셨다.", tags: [tag])

            #expect(try await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
                Self.ids(try await stack.call("GET", "/api/search?keyword=\(word)&sort=newest")).count == 3
            }, "the replica has the three posts")
            let r = try await stack.call("GET", "/api/search?keyword=\(word)")
            #expect(r.status == 200 && r["matched"] == "words")
            #expect(Self.ids(r).first == inTitle, "title matches rank first: \(r)")
            #expect(Set(Self.ids(r)) == Set([inBody, inTitle, korean]))
            let hit = try #require(Self.items(r).first { $0["id"] as? String == inBody })
            let snippet = try #require(hit["snippet"] as? [[String: Any]])
            #expect(snippet.contains { $0["match"] as? Bool == true && $0["text"] as? String == word })
            // ts_headline drops what looks like an HTML tag: snippets are plain text either way.
            #expect(snippet.contains { ($0["text"] as? String)?.contains("bold") == true })
            #expect(!snippet.contains { ($0["text"] as? String)?.contains("<b>") == true })
            #expect(hit["body"] == nil && hit["score"] is Double)

            // A prefix, two words (both required), Korean with a particle attached, a tag filter.
            #expect(Set(Self.ids(try await stack.call("GET", "/api/search?keyword=\(word.prefix(7))&tag=\(tag)"))) == Set([inBody, inTitle, korean]))
            #expect(Self.ids(try await stack.call("GET", "/api/search?keyword=\(word)%20bridge")) == [inBody])
            #expect(Self.ids(try await stack.call("GET", "/api/search?keyword=\(word)%20%EC%BB%A4%ED%94%BC")) == [korean])
            #expect(Self.ids(try await stack.call("GET", "/api/search?keyword=\(word)&tag=other")) == [inTitle])
            #expect(Self.ids(try await stack.call("GET", "/api/search?keyword=\(word)&author=\(author.userID)&sort=newest")) == [korean, inTitle, inBody])

            // Paging through relevance by cursor: every hit once.
            let first = try await stack.call("GET", "/api/search?keyword=\(word)&limit=2")
            let second = try await stack.call("GET", "/api/search?keyword=\(word)&limit=2&cursor=\(first.json["nextCursor"] as? String ?? "")")
            #expect(Self.ids(first) + Self.ids(second) == Self.ids(r))
            #expect(second.json["nextCursor"] == nil)

            // A typo matches no word: titles that look like it.
            let typo = String(word.prefix(4)) + String(word.dropFirst(5))
            let similar = try await stack.call("GET", "/api/search?keyword=\(typo)")
            #expect(similar["matched"] == "similar", "\(similar)")
            #expect(Self.ids(similar).first == inTitle || Self.ids(similar).first == korean, "\(similar)")

            for query in ["", "keyword=", "keyword=%20%20", "keyword=%21%21%3F", "keyword=\(String(repeating: "a", count: 201))", "keyword=x&sort=best"] {
                let bad = try await stack.call("GET", "/api/search?\(query)")
                #expect(bad.status == 400, "\(query): \(bad)")
            }
        }
    }

    @Test("the cache: a hit the second time; a write makes it miss; the writer sees their write at once, everyone soon")
    func cacheAndReadYourWrites() async throws {
        try await Self.withStack { stack in
            let writer = try await ContentTests.user(stack, "writer")
            let reader = try await ContentTests.user(stack, "reader")
            let tag = Self.tag()
            let first = try await Self.post(stack, writer, title: "Cached one", tags: [tag])
            // Anyone: once the replica has the post, the first read fills the cache, the second hits.
            let listed = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)", token: reader.access)) == [first]
            }
            #expect(listed)
            let filled = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                try await stack.call("GET", "/api/posts?tag=\(tag)").headers.first(name: "X-Aira-Cache") == "hit"
            }
            #expect(filled, "a first page is served from the cache")
            let search = "/api/search?keyword=cached&tag=\(tag)"
            _ = try await stack.call("GET", search)
            let searchHit = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                try await stack.call("GET", search).headers.first(name: "X-Aira-Cache") == "hit"
            }
            #expect(searchHit, "a first search page is served from the cache")

            // The writer writes: their next read bypasses the cache and reads the primary, with the post.
            let second = try await Self.post(stack, writer, title: "Cached two", tags: [tag])
            let own = try await stack.call("GET", "/api/posts?tag=\(tag)", token: writer.access)
            #expect(Self.ids(own) == [second, first])
            #expect(own.headers.first(name: "X-Aira-Cache") == "bypass")
            #expect(own.headers.first(name: "X-Aira-Read") == "primary")
            let ownOne = try await stack.call("GET", "/api/posts/\(second)", token: writer.access)
            #expect(ownOne.status == 200 && ownOne.headers.first(name: "X-Aira-Read") == "primary")
            let ownEdit = try await stack.call("PATCH", "/api/posts/\(first)", json: ["title": "Cached one, edited"], token: writer.access)
            #expect(ownEdit.status == 200)
            #expect(try await stack.call("GET", "/api/posts/\(first)", token: writer.access)["title"] == "Cached one, edited")
            #expect(Self.ids(try await stack.call("GET", search, token: writer.access)).count == 2)

            // Everyone else: the old cached page is gone (new generation); they see it as soon as
            // their read source has it, and the cache never keeps the old page.
            let everyone = try await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
                Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)")) == [second, first]
            }
            #expect(everyone)
            for _ in 0..<5 { #expect(Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)")) == [second, first]) }
        }
    }

    @Test("reads go to the replica; a lagging replica is left for the primary, and taken back when it catches up",
          .enabled(if: PostsTests.replicaURL != nil))
    func replicaLag() async throws {
        let replicaURL = try #require(Self.replicaURL)
        let replicaDB = PostgresClient(configuration: PostgresConfiguration(url: replicaURL, poolSize: 1))
        defer { Task { await replicaDB.shutdown() } }
        try await Self.withStack(cacheTTL: "0") { stack in
            let writer = try await ContentTests.user(stack, "writer")
            let tag = Self.tag()
            let usesReplica = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                try await stack.call("GET", "/api/posts?tag=\(tag)").headers.first(name: "X-Aira-Read") == "replica"
            }
            #expect(usesReplica, "anonymous reads go to the replica")
            #expect(try await stack.metric(port: stack.gateways[0].port, "aira_gateway_read_replica_usable") == 1)

            try await replicaDB.query("SELECT pg_wal_replay_pause()")
            do {
                let id = try await Self.post(stack, writer, title: "Written while the replica waits", tags: [tag])
                // The writer sees it at once (primary).
                #expect(Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)", token: writer.access)) == [id])
                // Within the tolerated lag (1 s) the others may not; past it, reads move to the primary and do.
                let moved = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                    let r = try await stack.call("GET", "/api/posts?tag=\(tag)")
                    return r.headers.first(name: "X-Aira-Read") == "primary" && Self.ids(r) == [id]
                }
                #expect(moved, "a replica more than 1 s behind is not read")
                #expect(try await stack.metric(port: stack.gateways[0].port, "aira_gateway_read_replica_usable") == 0)
                #expect(try await stack.metric(port: stack.gateways[0].port, "aira_gateway_read_replica_lag_seconds") >= 1)
            } catch {
                _ = try? await replicaDB.query("SELECT pg_wal_replay_resume()")
                throw error
            }
            try await replicaDB.query("SELECT pg_wal_replay_resume()")
            let back = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                let r = try await stack.call("GET", "/api/posts?tag=\(tag)")
                return r.headers.first(name: "X-Aira-Read") == "replica" && Self.ids(r).count == 1
            }
            #expect(back, "the caught-up replica serves again")
        }
    }

    @Test("without a replica: the gateway runs, every read is the primary's, the cache still serves")
    func noReplica() async throws {
        try await Self.withStack(replica: "") { stack in
            let writer = try await ContentTests.user(stack, "writer")
            let tag = Self.tag()
            let id = try await Self.post(stack, writer, title: "Primary only", tags: [tag])
            let first = try await stack.call("GET", "/api/posts?tag=\(tag)")
            #expect(Self.ids(first) == [id] && first.headers.first(name: "X-Aira-Read") == "primary")
            #expect(try await stack.call("GET", "/api/posts?tag=\(tag)").headers.first(name: "X-Aira-Cache") == "hit")
            #expect(try await stack.call("GET", "/api/posts/\(id)").headers.first(name: "X-Aira-Read") == "primary")
            // Its own write visible at once even to others: no replica to lag, and the generation moved.
            let second = try await Self.post(stack, writer, title: "Primary only, two", tags: [tag])
            #expect(Self.ids(try await stack.call("GET", "/api/posts?tag=\(tag)")) == [second, id])
        }
    }

    @Test("a replica that cannot be reached: every read answered by the primary, no 5xx")
    func replicaDown() async throws {
        // A read URL where nothing listens: what the gateway sees of a replica that is down.
        let port = try freePort()
        try await Self.withStack(replica: "postgres://aira:aira@127.0.0.1:\(port)/aira", cacheTTL: "0") { stack in
            let writer = try await ContentTests.user(stack, "writer")
            let tag = Self.tag()
            let id = try await Self.post(stack, writer, title: "Replica down", body: "nothing replicates", tags: [tag])
            for path in ["/api/posts?tag=\(tag)", "/api/posts/\(id)", "/api/search?keyword=replicates&tag=\(tag)", "/api/posts?tag=\(tag)&page=1",
                         "/api/playlists"] {
                let r = try await stack.call("GET", path)
                #expect(r.status == 200, "\(path): \(r)")
                if path.contains("posts?") || path.contains("search") {
                    #expect(r.headers.first(name: "X-Aira-Read") == "primary")
                    #expect(Self.ids(r) == [id])
                }
            }
            #expect(try await stack.metric(port: stack.gateways[0].port, "aira_gateway_read_replica_usable") == 0)
        }
    }
}
