#!/usr/bin/env python3
"""The request mix of scripts/bench-search, one path per line (wrk draws lines uniformly, so a
path's share is its share of lines). `list`: the post lists people browse; `search`: keywords
drawn the way people search (a few very popular, a long tail), from the seed's own vocabulary
(scripts/lib/seed_posts.py), in five languages, some with two words, some misspelt, some with a
tag filter or sorted by date."""
import itertools
import os
import random
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from seed_posts import LANGUAGES, TAGS, WORDS, long_tails, seed_authors, zipf_weights  # noqa: E402

rng = random.Random(7)
kind, n = sys.argv[1], int(sys.argv[2])
q = urllib.parse.quote
tag_w = zipf_weights(len(TAGS), 0.9)


def pick_tag():
    return rng.choices(TAGS, cum_weights=tag_w)[0]


# The authors scripts/seed-posts created (its default seed).
authors = seed_authors(random.Random(20261204), 10_000)
out = []
if kind == "list":
    for _ in range(n):
        r = rng.random()
        if r < 0.40:
            out.append("/api/posts")
        elif r < 0.55:
            out.append("/api/posts?page=%d" % rng.randint(2, 5))
        elif r < 0.70:
            out.append("/api/posts?tag=%s" % q(pick_tag()))
        elif r < 0.80:
            out.append("/api/posts?sort=liked")
        elif r < 0.90:
            out.append("/api/posts?author=%s" % rng.choice(authors))
        else:
            # Deep pages by number: not cached, at most 999 rows of OFFSET past an anchor.
            out.append("/api/posts?page=%d" % rng.randint(6, 50_000))
elif kind == "search":
    # Search terms: the words people look for are content words, not "the": each language's
    # common content words, and (more often) words of its long tail — the ones a search is
    # for. Popularity follows a Zipf law (the tail's more frequent words first), so a few
    # searches are very popular and most are rare. Two-word searches stay in one language, as
    # people's do.
    tails = long_tails()
    langs = [l for l, _ in LANGUAGES]
    lang_w = list(itertools.accumulate(w for _, w in LANGUAGES))
    content = {lang: text.split()[len(text.split()) // 4:] for lang, text in WORDS.items()}
    tail_w = {lang: zipf_weights(len(words), 0.9) for lang, words in tails.items()}
    content_w = {lang: zipf_weights(len(words), 0.9) for lang, words in content.items()}

    def term(lang):
        if rng.random() < 0.7:
            return rng.choices(tails[lang], cum_weights=tail_w[lang])[0]
        return rng.choices(content[lang], cum_weights=content_w[lang])[0]
    for _ in range(n):
        r = rng.random()
        lang = rng.choices(langs, cum_weights=lang_w)[0]
        a = term(lang)
        if r < 0.65:
            out.append("/api/search?keyword=%s" % q(a))
        elif r < 0.80:
            out.append("/api/search?keyword=%s" % q(a + " " + term(lang)))
        elif r < 0.88:
            out.append("/api/search?keyword=%s&sort=newest" % q(a))
        elif r < 0.95:
            out.append("/api/search?keyword=%s&tag=%s" % (q(a), q(pick_tag())))
        else:
            # A typo: one letter dropped (the trigram fallback may answer).
            if len(a) > 4:
                i = rng.randrange(1, len(a) - 1)
                a = a[:i] + a[i + 1:]
            out.append("/api/search?keyword=%s" % q(a))
else:
    sys.exit("usage: search_paths.py list|search N")
print("\n".join(out))
