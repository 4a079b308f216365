"""The survey pages' and emails' fixed words, in the customer's language.

A small table rather than .po files: a handful of strings, no compile step, and a test
checks every language has every key. The marketer's own words (question, thank-you text)
come from `Survey.translations`. Unknown languages fall back to English.
"""

from typing import Any

from lifecycle.preference_words import language as base_language

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "question.nps": "How likely are you to recommend {store} to a friend or colleague?",
        "question.csat": "How satisfied are you with your order?",
        "question.ces": "How much effort did it take to get started?",
        "question.review": "How would you rate {product}?",
        "question.text": "Is there anything you'd like to tell us?",
        "follow_up": "What is the main reason for your score?",
        "follow_up.text": "Your answer",
        "thank_you": "Thank you! Your answer helps us get better.",
        "low.nps": "Not at all likely",
        "high.nps": "Extremely likely",
        "low.csat": "Very unsatisfied",
        "high.csat": "Very satisfied",
        "low.ces": "Very little effort",
        "high.ces": "A great deal of effort",
        "low.review": "Poor",
        "high.review": "Excellent",
        "your_score": "Your answer: {score}",
        "recording": "Saving your answer…",
        "recorded": "Got it, thank you! Add a comment if you like.",
        "confirm": "Confirm my answer",
        "send": "Send",
        "update": "Update my answer",
        "title": "Title",
        "review_body": "Your review",
        "stars": "{n} of 5 stars",
        "thanks_title": "Thank you!",
        "sorry": "We're sorry it wasn't better. Someone from our team will look at your answer.",
        "next.review": "Would you review what you bought? Good or bad, it helps the next person decide.",
        "next.review_link": "Review {product}",
        "next.share": "Glad you like it! Share your link with a friend:",
        "next.share_link": "Share with a friend",
        "next.loyalty": "See your points",
        "answered": "You already answered: {score}. You can change your answer until {until}.",
        "closed_title": "This survey is closed",
        "closed": "Answers can be changed for 7 days. Thank you for yours!",
        "choose": "Please choose a score.",
        "email.intro": "Just click your answer:",
        "email.review_intro": "Rate what you bought:",
        "email.answer": "Answer",
        "review_thanks": "Thank you for your review! It appears in the shop once we've checked it.",
    },
    "de": {
        "question.nps": "Wie wahrscheinlich ist es, dass Sie {store} einem Freund oder Kollegen empfehlen?",
        "question.csat": "Wie zufrieden sind Sie mit Ihrer Bestellung?",
        "question.ces": "Wie viel Aufwand war es, loszulegen?",
        "question.review": "Wie bewerten Sie {product}?",
        "question.text": "Möchten Sie uns etwas mitteilen?",
        "follow_up": "Was ist der wichtigste Grund für Ihre Bewertung?",
        "follow_up.text": "Ihre Antwort",
        "thank_you": "Vielen Dank! Ihre Antwort hilft uns, besser zu werden.",
        "low.nps": "Überhaupt nicht wahrscheinlich",
        "high.nps": "Äußerst wahrscheinlich",
        "low.csat": "Sehr unzufrieden",
        "high.csat": "Sehr zufrieden",
        "low.ces": "Sehr wenig Aufwand",
        "high.ces": "Sehr viel Aufwand",
        "low.review": "Schlecht",
        "high.review": "Ausgezeichnet",
        "your_score": "Ihre Antwort: {score}",
        "recording": "Ihre Antwort wird gespeichert …",
        "recorded": "Danke, angekommen! Möchten Sie noch etwas ergänzen?",
        "confirm": "Antwort bestätigen",
        "send": "Senden",
        "update": "Antwort ändern",
        "title": "Titel",
        "review_body": "Ihre Bewertung",
        "stars": "{n} von 5 Sternen",
        "thanks_title": "Vielen Dank!",
        "sorry": "Es tut uns leid, dass es nicht besser war. Jemand aus unserem Team sieht sich Ihre Antwort an.",
        "next.review": "Möchten Sie Ihren Kauf bewerten? Ob gut oder schlecht, es hilft anderen bei der Entscheidung.",
        "next.review_link": "{product} bewerten",
        "next.share": "Schön, dass es Ihnen gefällt! Teilen Sie Ihren Link mit Freunden:",
        "next.share_link": "Mit Freunden teilen",
        "next.loyalty": "Ihre Punkte ansehen",
        "answered": "Sie haben bereits geantwortet: {score}. Sie können Ihre Antwort bis {until} ändern.",
        "closed_title": "Diese Umfrage ist geschlossen",
        "closed": "Antworten können 7 Tage lang geändert werden. Danke für Ihre!",
        "choose": "Bitte wählen Sie eine Bewertung.",
        "email.intro": "Klicken Sie einfach auf Ihre Antwort:",
        "email.review_intro": "Bewerten Sie Ihren Kauf:",
        "email.answer": "Antworten",
        "review_thanks": "Danke für Ihre Bewertung! Sie erscheint im Shop, sobald wir sie geprüft haben.",
    },
}


def language(locale: str | None) -> str:
    return base_language(locale, STRINGS)


def t(locale: str | None, key: str, **values: Any) -> str:
    text = STRINGS[language(locale)].get(key) or STRINGS["en"][key]
    return text.format(**values) if values else text


def strings(locale: str | None) -> dict[str, str]:
    """Every string for a template, keys with dots turned into underscores."""
    table = {**STRINGS["en"], **STRINGS[language(locale)]}
    return {key.replace(".", "_"): value for key, value in table.items()}
