"""A deterministic MIND-format data generator with a learnable content signal, for demos and tests."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["TOPICS", "make_synthetic_mind"]

# topic -> (general words, {subcategory: words}). Hand-written so titles reveal their category without downloads.
_VOCABULARY = {
    "sports": (
        "team coach season league match score win player fans stadium trophy playoff",
        {
            "football": "quarterback touchdown nfl kickoff linebacker punt goalpost huddle",
            "basketball": "dunk nba rebound courtside buzzer hoop layup dribble",
            "tennis": "serve wimbledon racket volley baseline deuce ace grandslam",
        },
    ),
    "space": (
        "nasa orbit launch mission astronaut galaxy cosmic satellite telescope crew spacecraft gravity",
        {
            "rockets": "booster thrust liftoff falcon payload engine countdown fuel",
            "planets": "mars jupiter rover saturn crater venus moon rings",
            "astronomy": "comet nebula eclipse meteor supernova stargazing asteroid observatory",
        },
    ),
    "finance": (
        "stocks investors market shares profit earnings economy dollar trading fund index growth",
        {
            "markets": "dow nasdaq rally selloff bull bear volatility futures",
            "banking": "loan mortgage interest deposit lender credit savings branch",
            "crypto": "bitcoin blockchain token ethereum wallet mining exchange stablecoin",
        },
    ),
    "health": (
        "doctors patients study disease hospital wellness symptoms treatment clinic research care risk",
        {
            "nutrition": "vitamins protein diet calories fiber sugar vegetables supplements",
            "fitness": "workout cardio gym running strength yoga stretching marathon",
            "medicine": "vaccine drug surgery antibiotic therapy prescription trial dose",
        },
    ),
    "technology": (
        "tech device startup digital users update app gadget silicon chip cloud data",
        {
            "smartphones": "iphone android battery screen camera charger foldable 5g",
            "ai": "algorithm robot neural chatbot automation model learning vision",
            "software": "code developer bug release opensource browser patch linux",
        },
    ),
    "politics": (
        "government senator policy vote campaign law president debate party reform minister official",
        {
            "elections": "ballot polls candidate primary turnout voters caucus recount",
            "congress": "bill senate house hearing committee impeachment lawmakers veto",
            "diplomacy": "treaty summit embassy sanctions ambassador alliance talks envoy",
        },
    ),
    "food": (
        "chef kitchen dish flavor meal taste ingredients dinner cooking menu lunch snack",
        {
            "recipes": "casserole skillet marinade roast soup sauce stew grill",
            "restaurants": "bistro diner waiter reservation brunch michelin takeout cafe",
            "baking": "bread cake dough oven pastry cookies flour pie",
        },
    ),
    "travel": (
        "trip vacation tourists flight hotel destination journey passport airport luggage guide resort",
        {
            "beaches": "island surf sand coast snorkel tropical lagoon sunset",
            "mountains": "hiking summit trail alpine cabin glacier peak camping",
            "cities": "downtown museum subway skyline nightlife landmark plaza boulevard",
        },
    ),
    "music": (
        "song band singer album tour fans stage hit melody studio lyrics chart",
        {
            "concerts": "festival tickets encore arena setlist crowd headliner soundcheck",
            "albums": "vinyl tracklist debut remix producer single streaming platinum",
            "jazz": "saxophone trumpet swing improvisation bebop trio blues piano",
        },
    ),
    "weather": (
        "forecast temperatures meteorologist warning climate rain winds season radar conditions region outlook",
        {
            "storms": "hurricane tornado thunder flooding lightning cyclone hail evacuation",
            "heatwave": "drought scorching wildfire humidity sunburn record dry heatstroke",
            "snow": "blizzard frost icy snowfall sleet plow avalanche freezing",
        },
    ),
}
TOPICS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    topic: (general.split(), {sub: words.split() for sub, words in subs.items()})
    for topic, (general, subs) in _VOCABULARY.items()
}
_COMMON_WORDS = (
    "new report says after first week top big latest why how what today people year best more could amid just"
).split()


@dataclass
class _News:
    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str
    quality: float  # per-item click propensity, so popularity carries a little (but not much) signal


@dataclass
class _User:
    user_id: str
    interests: list[str]  # topics, most important first
    weights: list[float]
    favorites: dict[str, str]  # topic -> favourite subcategory
    history: list[_News]  # oldest first


def _text(rng: random.Random, topic: str, sub: str, length: int, noise: float) -> list[str]:
    """Words mostly from the subcategory and topic, some common words, a `noise` share from other topics."""
    general, subs = TOPICS[topic]
    words = []
    for _ in range(length):
        draw = rng.random()
        if draw < noise:
            other_general, other_subs = TOPICS[rng.choice(list(TOPICS))]
            words.append(rng.choice(other_general + [w for ws in other_subs.values() for w in ws]))
        elif draw < noise + 0.45:
            words.append(rng.choice(subs[sub]))
        elif draw < noise + 0.75:
            words.append(rng.choice(general))
        else:
            words.append(rng.choice(_COMMON_WORDS))
    return words


def _affinity(user: _User, news: _News) -> float:
    if news.category not in user.interests:
        return 0.0
    return 1.0 + (0.8 if user.favorites[news.category] == news.subcategory else 0.0)


def _click_probability(user: _User, news: _News) -> float:
    return 1.0 / (1.0 + math.exp(3.3 - 2.8 * _affinity(user, news) - news.quality))


def _mind_time(time: datetime) -> str:
    """MIND's `11/15/2019 8:55:22 AM` (no zero padding of month, day and hour), independent of the locale."""
    hour = time.hour % 12 or 12
    return f"{time.month}/{time.day}/{time.year} {hour}:{time:%M:%S} {'AM' if time.hour < 12 else 'PM'}"


def _summary(user: _User) -> str:
    def join(words: list[str]) -> str:
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

    subs = [user.favorites[topic] for topic in user.interests]
    return f"The user is interested in {join(user.interests)}, especially {join(subs)}."


def make_synthetic_mind(
    output_dir: str | Path,
    *,
    num_users: int = 600,
    num_news: int = 1500,
    num_categories: int = 10,
    num_train_impressions: int = 3000,
    num_dev_impressions: int = 600,
    min_candidates: int = 5,
    max_candidates: int = 20,
    max_history: int = 100,
    empty_history_fraction: float = 0.08,
    seed: int = 0,
) -> Path:
    """Write a deterministic synthetic MIND dataset and return `output_dir`.

    Layout: `train/` and `dev/` each with MIND-format `news.tsv` and `behaviors.tsv` (so `load_mind(output_dir,
    "train")` works), plus `summaries.jsonl` with one ground-truth interest summary per user
    (`{"user_id", "summary"}`, e.g. "The user is interested in sports and space, especially football and rockets.").

    Generative story: each news item belongs to a topic and subcategory whose words dominate its title and
    abstract. Each user has 1-3 interest topics with a favourite subcategory each; the history (long-tailed
    length, 0 to `max_history`, some users empty) is drawn mostly from those interests. Each impression shows
    `min_candidates`..`max_candidates` news, about 30% from the user's interests, and each is clicked with a
    probability that rises with the user's affinity to its topic/subcategory plus a small per-item quality term
    (at least one click and one non-click per impression). Content therefore predicts clicks while item
    popularity barely does. Dev impressions come after all train impressions; the dev history also holds the
    user's train clicks, as in MIND. The same arguments always produce the same bytes.
    """
    if not 1 <= num_categories <= len(TOPICS):
        raise ValueError(f"num_categories must be in 1..{len(TOPICS)}, got {num_categories}")
    if not 2 <= min_candidates <= max_candidates or max_candidates > num_news:
        raise ValueError("need 2 <= min_candidates <= max_candidates <= num_news")
    rng = random.Random(seed)
    topics = list(TOPICS)[:num_categories]

    news = []
    for index in range(num_news):
        topic = rng.choice(topics)
        sub = rng.choice(list(TOPICS[topic][1]))
        title = " ".join(_text(rng, topic, sub, rng.randint(5, 9), noise=0.05)).capitalize()
        abstract = " ".join(_text(rng, topic, sub, rng.randint(12, 24), noise=0.1)).capitalize() + "."
        news.append(_News(f"N{index + 1}", topic, sub, title, abstract, rng.gauss(0.0, 0.3)))
    by_topic = {topic: [n for n in news if n.category == topic] for topic in topics}

    def interesting(user: _User) -> _News:
        topic = rng.choices(user.interests, weights=user.weights)[0]
        pool = by_topic[topic] or news
        favourite = [n for n in pool if n.subcategory == user.favorites[topic]]
        return rng.choice(favourite if favourite and rng.random() < 0.5 else pool)

    users = []
    for index in range(num_users):
        interests = rng.sample(topics, min(len(topics), rng.choice([1, 2, 2, 3])))
        weights = sorted((rng.random() + 0.5 for _ in interests), reverse=True)
        user = _User(f"U{index + 1}", interests, weights, {t: rng.choice(list(TOPICS[t][1])) for t in interests}, [])
        length = (
            0 if rng.random() < empty_history_fraction else min(max_history, 1 + int(rng.lognormvariate(2.3, 1.0)))
        )
        seen: set[str] = set()
        for _ in range(length * 3):  # bounded retries to find distinct items
            if len(user.history) == length:
                break
            item = interesting(user) if rng.random() < 0.85 else rng.choice(news)
            if item.news_id not in seen:
                seen.add(item.news_id)
                user.history.append(item)
        users.append(user)

    def impression(user: _User, excluded: set[str]) -> list[tuple[str, int]]:
        size = rng.randint(min_candidates, max_candidates)
        chosen: dict[str, _News] = {}
        for _ in range(size * 10):
            if len(chosen) == size:
                break
            item = interesting(user) if rng.random() < 0.3 else rng.choice(news)
            if item.news_id not in excluded:
                chosen[item.news_id] = item
        shown = list(chosen.values())
        probabilities = [_click_probability(user, item) for item in shown]
        labels = [int(rng.random() < p) for p in probabilities]
        if not any(labels):
            labels[probabilities.index(max(probabilities))] = 1
        if all(labels):
            labels[probabilities.index(min(probabilities))] = 0
        return [(item.news_id, label) for item, label in zip(shown, labels)]

    output_dir = Path(output_dir)
    start = datetime(2019, 11, 9)
    train_clicks: dict[str, list[str]] = {user.user_id: [] for user in users}
    splits = {
        "train": (num_train_impressions, start, timedelta(days=6)),
        "dev": (num_dev_impressions, start + timedelta(days=6), timedelta(days=1)),
    }
    for split, (count, begin, span) in splits.items():
        folder = output_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "news.tsv", "w", encoding="utf-8", newline="\n") as handle:
            for n in news:
                url = f"https://example.org/synthetic/{n.news_id}.html"
                handle.write(
                    "\t".join([n.news_id, n.category, n.subcategory, n.title, n.abstract, url, "[]", "[]"]) + "\n"
                )
        step = span / max(count, 1)
        lines = []
        for index in range(count):
            user = rng.choice(users)
            base = [n.news_id for n in user.history]
            shown = impression(user, set(base + train_clicks[user.user_id]))  # nobody is shown a read item again
            history = base + (train_clicks[user.user_id] if split == "dev" else [])
            if split == "train":
                train_clicks[user.user_id] += [news_id for news_id, label in shown if label == 1]
            time = begin + step * index + timedelta(seconds=rng.randrange(max(int(step.total_seconds()), 1)))
            tokens = " ".join(f"{news_id}-{label}" for news_id, label in shown)
            lines.append("\t".join([str(index + 1), user.user_id, _mind_time(time), " ".join(history), tokens]))
        (folder / "behaviors.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    with open(output_dir / "summaries.jsonl", "w", encoding="utf-8", newline="\n") as handle:
        for user in users:
            handle.write(json.dumps({"user_id": user.user_id, "summary": _summary(user)}) + "\n")
    return output_dir
