-- The planner's estimate of how many posts a word matches comes from the most common elements
-- of posts.search that ANALYZE samples. With the default statistics target (100) a rare word
-- was estimated at ~3,000 matches, so "newest matches first" walked posts_newest filtering
-- row by row (260 ms for a word in 291 posts); with 1000 it is estimated right and read from
-- the GIN index (1 ms). docs/search-plans.md has the plans.
ALTER TABLE posts ALTER COLUMN search SET STATISTICS 1000;
