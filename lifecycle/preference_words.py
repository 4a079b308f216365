"""The preference page's words, in the customer's language: the languages the other shopper pages speak
(feedback/i18n.py; tests/journeys/test_preferences.py checks both tables name the same ones).

A small table rather than .po files, as feedback's: a handful of strings, no compile step, and a test
checks every language has every key. Unknown languages fall back to English.
"""

from collections.abc import Collection

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your emails from {store}",
        "intro": "Choose what {email} gets from us. Order and delivery updates always arrive.",
        "category.tips": "Tips and how-to",
        "category.tips.help": "Getting the most out of what you bought.",
        "category.reviews": "Reviews and surveys",
        "category.reviews.help": "Now and then a quick question, or a request to review what you bought.",
        "category.offers": "Offers",
        "category.offers.help": "Discounts, restock reminders and what's new.",
        "category.loyalty": "Loyalty and referral news",
        "category.loyalty.help": "Your points, rewards and referral link.",
        "save": "Save my choices",
        "subscribe": "Subscribe again with these choices",
        "unsubscribe_all": "Unsubscribe from everything",
        "unsubscribe_all.help": "No marketing email at all; order and delivery updates still arrive.",
        "saved": "Saved. Your next email follows these choices.",
        "subscribed": "Welcome back! You're subscribed again, with these choices.",
        "unsubscribed": "You're unsubscribed: you get no marketing email from {store}.",
        "not_subscribed": "You get no marketing email from {store} at the moment.",
        "unsubscribed.help": "Changed your mind? Tick what you'd like and subscribe again.",
        "bad_choice": "We don't know one of those choices. Please pick from the list and save again.",
        "bad_action": "Please use one of the buttons on this page.",
    },
    "de": {
        "title": "Ihre E-Mails von {store}",
        "intro": "Wählen Sie, was {email} von uns bekommt. Bestell- und Versandinfos kommen immer an.",
        "category.tips": "Tipps und Anleitungen",
        "category.tips.help": "So holen Sie das Beste aus Ihrem Kauf heraus.",
        "category.reviews": "Bewertungen und Umfragen",
        "category.reviews.help": "Ab und zu eine kurze Frage oder die Bitte, Ihren Kauf zu bewerten.",
        "category.offers": "Angebote",
        "category.offers.help": "Rabatte, Nachkauf-Erinnerungen und Neuheiten.",
        "category.loyalty": "Treue- und Empfehlungsprogramm",
        "category.loyalty.help": "Ihre Punkte, Prämien und Ihr Empfehlungslink.",
        "save": "Auswahl speichern",
        "subscribe": "Mit dieser Auswahl wieder anmelden",
        "unsubscribe_all": "Von allem abmelden",
        "unsubscribe_all.help": "Keine Werbe-E-Mails mehr; Bestell- und Versandinfos kommen weiterhin an.",
        "saved": "Gespeichert. Ihre nächste E-Mail richtet sich danach.",
        "subscribed": "Willkommen zurück! Sie sind wieder angemeldet, mit dieser Auswahl.",
        "unsubscribed": "Sie sind abgemeldet: Sie bekommen keine Werbe-E-Mails von {store}.",
        "not_subscribed": "Sie bekommen derzeit keine Werbe-E-Mails von {store}.",
        "unsubscribed.help": "Es sich anders überlegt? Wählen Sie aus, was Sie möchten, und melden Sie sich wieder an.",
        "bad_choice": "Eine dieser Angaben kennen wir nicht. Bitte wählen Sie aus der Liste und speichern Sie erneut.",
        "bad_action": "Bitte nutzen Sie einen der Knöpfe auf dieser Seite.",
    },
}


def language(locale: str | None, known: Collection[str] = STRINGS) -> str:
    """The base language of `locale` ("de-AT", "de_AT" → "de") if `known` has it, else English. Every
    shopper page's word table is looked up through it (feedback.i18n passes its own)."""
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in known else "en"


def words(locale: str | None, **values: str) -> dict[str, str]:
    """Every string for the page in the customer's language, formatted with `values`; keys with dots
    turned into underscores for the template."""
    table = {**STRINGS["en"], **STRINGS[language(locale)]}
    return {key.replace(".", "_"): text.format(**values) for key, text in table.items()}
