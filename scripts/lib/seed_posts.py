#!/usr/bin/env python3
"""Writes N synthetic posts in COPY text format (scripts/seed-posts pipes it into PostgreSQL).

Columns: id, author_id, title, body, tags, like_count, created_at. Text in English, Korean,
Spanish, German and French, with word frequencies skewed the way real text is: about half the
words are each language's few hundred common ones, the rest a long tail of 20,000 per language
(the system dictionary's words for the Latin-script languages, synthetic 2–3 syllable words for
Korean), so searches range from a handful of hits to tens of thousands. Authors
are `--authors` ids made from the seed, the same ones scripts/seed-posts creates as users.
Deterministic for a given --seed.
"""
import argparse
import itertools
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

WORDS = {
    "en": """the of and to in is that it for on with as was at by this be from are have or an they which one you had
        not but all were when we there can been has more if no out so said what up its about into than them only other
        new some could time these two may first then do any like my now over such our man me even most made after also
        did many before must through back years where much your way well down should because each just those people how
        too little state good very make world still own see men work long get here between both life being under never
        day same another know while last might us great old year off come since against go came right used take three
        coffee search database queue rabbit redis postgres swift server latency cache replica index vector query users
        music video playlist travel seoul recipe kitchen garden football weather morning evening weekend mountain river
        city train airport market festival camera photo guitar piano movie book library school teacher student office
        meeting project deadline release bug feature deploy cluster kubernetes message worker retry timeout budget""",
    "ko": """그리고 하지만 오늘 어제 내일 우리 사람들 정말 너무 아주 그냥 이제 다시 함께 모두 많이 조금 항상 가끔 여기 거기
        커피를 커피는 커피 검색 검색은 검색을 데이터베이스 서버 서버가 캐시 캐시를 사용자 사용자가 음악 음악을 영상 영상을 여행 여행을
        서울 서울에서 부산 부산에서 제주도 맛집 맛집을 요리 요리를 주말 주말에 아침 저녁 점심 친구 친구와 가족 가족과 회사 회사에서
        학교 학교에서 선생님 학생 공부 공부를 책을 영화 영화를 노래 노래를 사진 사진을 카메라 기차 비행기 공항 시장 축제 날씨 날씨가
        좋다 좋았다 좋아요 먹었다 마셨다 갔다 왔다 봤다 했다 있다 없다 많다 적다 빠르다 느리다 새로운 오래된 작은 큰 재미있는 맛있는
        개발 개발자 배포 배포를 버그 버그를 기능 기능을 프로젝트 마감 회의 회의를 메시지 메시지를 큐 재시도 장애 장애가 복구""",
    "es": """el la de que y en a los se del las un por con no una su para es al lo como más pero sus le ya o este sí porque
        esta entre cuando muy sin sobre también me hasta hay donde quien desde todo nos durante todos uno les ni contra
        café búsqueda base datos servidor caché usuario música vídeo viaje ciudad receta cocina jardín fútbol tiempo mañana
        noche fin semana montaña río tren aeropuerto mercado fiesta cámara foto guitarra película libro escuela proyecto""",
    "de": """der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus er hat
        dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur oder aber vor zur bis mehr
        kaffee suche datenbank server zwischenspeicher benutzer musik video reise stadt rezept küche garten fußball wetter
        morgen abend wochenende berg fluss zug flughafen markt fest kamera foto gitarre film buch schule projekt""",
    "fr": """le de un être et à il avoir ne je son que se qui ce dans en du elle au pour pas que vous par sur faire plus
        dire me on mon lui nous comme mais pouvoir avec tout y aller voir en bien où sans tu ou leur homme si deux mari
        café recherche base données serveur cache utilisateur musique vidéo voyage ville recette cuisine jardin football
        temps matin soir semaine montagne rivière train aéroport marché fête appareil photo guitare film livre école projet""",
}
# Share of posts per language.
LANGUAGES = [("en", 0.5), ("ko", 0.25), ("es", 0.1), ("de", 0.08), ("fr", 0.07)]
TAGS = ["news", "tech", "travel", "food", "music", "video", "sports", "books", "photo", "coding", "swift", "database",
        "devops", "seoul", "busan", "jeju", "recipe", "weekend", "question", "review", "tutorial", "release", "bug",
        "idea", "life", "work", "study", "movie", "games", "art", "coffee", "garden", "weather", "market", "festival",
        "서울", "여행", "음식", "음악", "개발", "café", "viaje", "reise", "voyage", "kaffee", "música", "musik", "cuisine",
        "kubernetes", "rabbitmq"]


def zipf_weights(n, s=0.8):
    """Cumulative Zipf weights for random.choices(cum_weights=…) (cumulative: O(log n) a draw)."""
    return list(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


# Hangul syllables the synthetic Korean long tail is made of.
KO_SYLLABLES = ("가 각 간 강 개 거 건 경 고 공 과 관 광 교 구 국 군 권 규 그 근 금 기 김 나 남 내 노 누 다 단 대 도 동 두 라 람 래 "
                "로 류 리 마 만 매 명 모 목 문 미 민 바 박 반 방 배 백 번 변 보 복 본 부 북 비 사 산 상 새 서 석 선 설 성 세 소 속 "
                "손 수 순 시 신 실 심 아 안 양 어 언 업 여 연 영 예 오 온 외 요 용 우 운 원 위 유 육 윤 은 음 의 이 인 일 임 자 작 "
                "장 재 전 정 제 조 종 주 준 중 지 진 차 창 채 천 철 청 초 최 추 춘 출 충 치 카 타 태 토 통 파 판 평 포 표 품 하 학 "
                "한 함 해 행 향 허 현 형 호 홍 화 환 황 회 효 후 훈 휘 희").split()


def long_tails(seed=20261204, size=20_000):
    """The rarer words of each language (most of a real vocabulary): the system dictionary's
    words (wamerican) for the languages written in Latin letters, and synthetic 2–3 syllable
    words for Korean. Deterministic for a seed."""
    rng = random.Random(seed + 1)
    try:
        with open("/usr/share/dict/words", encoding="utf-8") as f:
            latin = sorted({w.strip().lower() for w in f if w.strip().isalpha() and w.strip().isascii() and len(w.strip()) > 3})
    except OSError:
        latin = sorted({"".join(rng.choice("abcdefghijklmnoprstuvw") for _ in range(rng.randint(4, 9))) for _ in range(size * 2)})
    tails = {}
    for lang in WORDS:
        if lang == "ko":
            words = sorted({"".join(rng.choices(KO_SYLLABLES, k=rng.randint(2, 3))) for _ in range(size)})
        else:
            words = rng.sample(latin, min(size, len(latin)))
        rng.shuffle(words)
        tails[lang] = words
    return tails


def seed_authors(rng, count):
    """The authors' ids: the first draws of the seeded generator."""
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("count", type=int)
    ap.add_argument("--authors", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--print-authors", action="store_true", help="print the author ids (one per line) and exit")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    authors = seed_authors(rng, args.authors)
    if args.print_authors:
        sys.stdout.write("\n".join(authors) + "\n")
        return

    vocab = {lang: text.split() for lang, text in WORDS.items()}
    weights = {lang: zipf_weights(len(words)) for lang, words in vocab.items()}
    # Real text: about half the words are a language's few hundred common ones, the other half
    # come from a long tail of thousands (each rare), as in the Zipf law of word frequencies.
    tails = long_tails(args.seed)
    tail_weights = {lang: zipf_weights(len(words), 1.0) for lang, words in tails.items()}

    # Sentence pools per language: bodies are built from these, which keeps generation fast.
    pools = {}
    for lang, words in vocab.items():
        pool = []
        for _ in range(40_000):
            n = rng.randint(5, 16)
            k = sum(1 for _ in range(n) if rng.random() < 0.45)
            w = rng.choices(words, cum_weights=weights[lang], k=n - k) + rng.choices(tails[lang], cum_weights=tail_weights[lang], k=k)
            rng.shuffle(w)
            sentence = " ".join(w)
            pool.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "!", "?"]))
        pools[lang] = pool
    langs = [l for l, _ in LANGUAGES]
    lang_weights = list(itertools.accumulate(w for _, w in LANGUAGES))
    tag_weights = zipf_weights(len(TAGS), 0.9)
    like_weights = zipf_weights(200, 1.3)

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    span = int(timedelta(days=730).total_seconds() * 1_000_000)
    out = sys.stdout
    buf = []
    for i in range(args.count):
        lang = rng.choices(langs, cum_weights=lang_weights)[0]
        words = vocab[lang]
        title_words = rng.choices(words, cum_weights=weights[lang], k=rng.randint(2, 5)) + rng.choices(tails[lang], cum_weights=tail_weights[lang], k=rng.randint(1, 3))
        rng.shuffle(title_words)
        title = " ".join(title_words).capitalize()
        sentences = rng.choices(pools[lang], k=rng.randint(2, 9))
        paragraphs = []
        while sentences:
            k = rng.randint(1, 4)
            paragraphs.append(" ".join(sentences[:k]))
            sentences = sentences[k:]
        body = "\\n\\n".join(paragraphs)  # COPY text format: an escaped newline
        tags = sorted(set(rng.choices(TAGS, cum_weights=tag_weights, k=rng.randint(0, 3))))
        tag_text = "{" + ",".join('"%s"' % t for t in tags) + "}"
        likes = rng.choices(range(200), cum_weights=like_weights)[0] - 1
        likes = max(0, likes) if rng.random() < 0.7 else rng.randint(0, 5000) // (1 + rng.randint(0, 50))
        created = now - timedelta(microseconds=rng.randrange(span))
        pid = uuid.uuid4()  # random: loading twice adds posts instead of colliding
        buf.append("%s\t%s\t%s\t%s\t%s\t%d\t%s\n" % (pid, authors[rng.randrange(len(authors))], title, body, tag_text, likes,
                                                     created.isoformat()))
        if len(buf) >= 5000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
