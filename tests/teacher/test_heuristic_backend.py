"""The heuristic teacher reads every text field and names what recurs across a history, with or without categories."""

from embsum_hf.teacher import HeuristicBackend, SummaryRequest


def summarize(history, domain="custom"):
    return HeuristicBackend().generate([SummaryRequest.build("U1", history, domain)])[0]


def test_items_without_a_category_column_name_recurring_themes_from_titles_and_descriptions():
    history = [  # most recent first; no genre / category field at all
        {"item_id": "P9", "title": "Velvet lamp shade", "description": "A brass desk lamp."},
        {"item_id": "P1", "title": "Trail running shoes", "description": "Light shoes for mountain trail running."},
        {"item_id": "P2", "title": "Waterproof jacket", "description": "For trail running in mountain rain."},
        {"item_id": "P3", "name": "Headlamp", "description": "Bright light for mountain trail nights."},
        {"item_id": "P4", "title": "Hydration vest", "description": "Carries water on long running days."},
    ]
    summary = summarize(history)
    assert "various topics" not in summary
    # trail, running, mountain each recur in 3 items (trail, running: 4 mentions; mountain 3), the latest title not
    assert summary.startswith("The user mostly engaged with items about trail, running and mountain.")
    assert "velvet" not in summary and "shade" not in summary and "brass" not in summary
    assert "light" in summary  # from descriptions only ("Light shoes", "Bright light")
    assert summary.endswith("The top theme, trail, appears in 3 of the 5 items.")
    assert "p9" not in summary.lower()  # ids are not text
    assert summarize(history) == summary  # deterministic


def test_no_recurring_theme_and_single_items():
    history = [
        {"item_id": f"X{i}", "title": title} for i, title in enumerate(["Copper kettle", "Garden hose", "Chess set"])
    ]
    summary = summarize(history)
    assert summary.startswith("The user engaged with 3 items with no theme in common.")
    assert summary.endswith("They mention copper, garden and chess.")  # one word of each item, not the latest title
    assert summarize(history[:1]) == "The user engaged with one item, about copper."
    assert summarize([{"item_id": "X"}]).startswith("The user has no items with usable text")


def test_categories_lead_and_their_words_are_not_repeated_as_themes():
    movies = [
        {"item_id": "1", "title": "Star Wars", "year": "1977", "genres": "Action, Sci-Fi"},
        {"item_id": "2", "title": "Star Trek: First Contact", "year": "1996", "genres": "Action, Sci-Fi"},
        {"item_id": "3", "title": "Heat", "year": "1995", "genres": "Action, Crime"},
    ]
    summary = summarize(movies, "movielens")
    assert summary.startswith("The user mostly liked movies about action, sci-fi and crime.")
    assert "Recurring topics include star." in summary
    assert summary.endswith("The top category, action, appears in 3 of the 3 movies.")
