from django.urls import path

from . import pages

# Included at /f/ by config.urls. Tokens are signing.dumps() output: no "/" in them.
urlpatterns = [
    path("<str:token>", pages.answer, name="feedback-answer"),
    path("<str:token>/<int:score>", pages.answer, name="feedback-score"),
    path("<str:token>/review/<int:product_id>", pages.review, name="feedback-review"),
]
