"""Customer pages behind survey links: /f/<token>[/<score>] and /f/<token>/review/<product id>.

A GET never writes: mail scanners fetch every link in an email. The answer page shows the
clicked score selected; its small script POSTs it (one click records it, provisionally),
and without JavaScript the page asks to confirm. POSTs are csrf_exempt like the unsubscribe
page: the signed token authorizes them, and the form must carry the token's request id.
"""

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from lifecycle import clock
from lifecycle.errors import ServiceError
from lifecycle.links import LinkExpired, read_token
from lifecycle.numbers import whole_number
from lifecycle.tenancy import activate

from .i18n import language, strings, t
from .models import AnswerAttempt, Review, Survey, SurveyRequest, SurveyResponse
from .rendering import next_steps, score_buttons, texts
from .selectors import survey_for_config
from .services import answer_submit, review_products, review_request_for_product

COMMENT_MAX = 5000


def _request_from(token: str) -> SurveyRequest:
    payload = read_token("survey", token)
    if payload is None or "r" not in payload:
        raise Http404("unknown link")
    activate(payload["t"])  # the signed token names the tenant
    req = (SurveyRequest.objects.for_tenant(payload["t"]).select_related("survey", "customer__tenant", "order",
                                                                         "product")
           .filter(pk=payload["r"], customer_id=payload["c"]).first())
    if req is None:
        raise Http404("unknown link")
    return req


def _expired(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/link_expired.html", status=410)


def _in_scale(survey: Survey, score: int) -> bool:
    return survey.scale is not None and survey.scale[0] <= score <= survey.scale[1]


def _base(req: SurveyRequest) -> dict:
    locale = req.customer.locale
    return {"store": req.customer.tenant, "lang": language(locale), "s": strings(locale)}


def _answer_page(request: HttpRequest, req: SurveyRequest, *, survey: Survey, post_url: str, score: int | None,
                 response: SurveyResponse | None, product_title: str = "", error: str = "",
                 status: int = 200) -> HttpResponse:
    locale = req.customer.locale
    final = response is not None and response.state == SurveyResponse.State.FINAL
    selected = score if score is not None else (response.score if response else None)
    review = Review.objects.for_tenant(req.tenant_id).filter(response=response).first() if response else None
    auto = score is not None and not final  # a clicked link: the script records it
    context = {
        **_base(req),
        "words": texts(survey, locale, store=req.customer.tenant.name, product=product_title),
        "buttons": score_buttons(survey, "", locale), "selected": selected, "is_review": survey.kind == "review",
        "comment": response.comment if response else "", "title": review.title if review else "",
        "final": final, "auto": auto, "post_url": post_url, "request_id": req.pk, "error": error,
        "answered": t(locale, "answered", score=response.score, until=response.editable_until.date().isoformat())
        if final and response.score is not None else "",
    }
    context["page"] = {"auto": auto, "recording": context["s"]["recording"], "recorded": context["s"]["recorded"],
                       "send": context["s"]["send"]}
    return render(request, "feedback/answer.html", context, status=status)


def _parse_post(request: HttpRequest, req: SurveyRequest) -> tuple[str, int | None, str, str]:
    if request.POST.get("request") != str(req.pk):
        raise Http404("unknown link")
    mode = AnswerAttempt.Mode.AUTO if request.POST.get("mode") == "auto" else AnswerAttempt.Mode.CONFIRM
    raw = request.POST.get("score", "").strip()
    score = whole_number(raw, maximum=999)  # anything else is no score: the page asks for one (400)
    return mode, score, request.POST.get("comment", "")[:COMMENT_MAX].strip(), request.POST.get("title", "")[:200].strip()


def _thanks(request: HttpRequest, req: SurveyRequest, token: str, response: SurveyResponse) -> HttpResponse:
    words = texts(response.survey, req.customer.locale, store=req.customer.tenant.name)
    steps = next_steps(req=req, response=response, token=token, locale=req.customer.locale)
    is_review = response.survey.kind == Survey.Kind.REVIEW
    return render(request, "feedback/thanks.html", {**_base(req), "words": words, "next": steps,
                                                    "is_review": is_review})


def _closed(request: HttpRequest, req: SurveyRequest) -> HttpResponse:
    return render(request, "feedback/closed.html", _base(req))


# csrf_exempt: the signed token in the URL authorizes the POST (as for one-click unsubscribe).
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def answer(request: HttpRequest, token: str, score: int | None = None) -> HttpResponse:
    try:
        req = _request_from(token)
    except LinkExpired:
        return _expired(request)
    survey = req.survey
    if score is not None and not _in_scale(survey, score):
        raise Http404("no such score")
    product_title = (req.product.title or req.product.external_id) if req.product else ""
    post_url = f"/f/{token}"
    if request.method != "POST":
        response = SurveyResponse.objects.for_tenant(req.tenant_id).filter(request=req).first()
        if response and response.state == SurveyResponse.State.FINAL and clock.now() > response.editable_until:
            return _closed(request, req)
        return _answer_page(request, req, survey=survey, post_url=post_url, score=score, response=response,
                            product_title=product_title)
    mode, posted, comment, title = _parse_post(request, req)
    try:
        outcome = answer_submit(survey_request=req, score=posted, mode=mode, comment=comment, title=title,
                                user_agent=request.headers.get("User-Agent", ""))
    except ServiceError as exc:
        if mode == AnswerAttempt.Mode.AUTO:
            return JsonResponse({"state": "invalid", "message": exc.message}, status=400)
        return _answer_page(request, req, survey=survey, post_url=post_url, score=posted, response=None,
                            product_title=product_title, error=t(req.customer.locale, "choose"), status=400)
    if mode == AnswerAttempt.Mode.AUTO:
        locale = req.customer.locale
        message = {"recorded": t(locale, "recorded"), "held": "", "closed": t(locale, "closed")}.get(
            outcome.state, "")
        if outcome.state == "answered" and outcome.response is not None:
            message = t(locale, "answered", score=outcome.response.score,
                        until=outcome.response.editable_until.date().isoformat())
        return JsonResponse({"state": outcome.state, "message": message})
    if outcome.state == "closed":
        return _closed(request, req)
    return _thanks(request, req, token, outcome.response)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def review(request: HttpRequest, token: str, product_id: int) -> HttpResponse:
    """Review a product of the order a survey link was about (offered on the thank-you page)."""
    try:
        req = _request_from(token)
    except LinkExpired:
        return _expired(request)
    product = next((p for p in review_products(req.order) if p.pk == product_id), None) if req.order else None
    if product is None:
        raise Http404("not on this order")
    existing = (SurveyRequest.objects.for_tenant(req.tenant_id)
                .filter(customer=req.customer, order=req.order, product=product, survey__kind=Survey.Kind.REVIEW)
                .select_related("survey").order_by("pk").first())
    survey = existing.survey if existing else survey_for_config(tenant=req.tenant_id, config={"survey": "review"})
    response = (SurveyResponse.objects.for_tenant(req.tenant_id).filter(request=existing).first()
                if existing else None)
    post_url = f"/f/{token}/review/{product.pk}"
    title = product.title or product.external_id
    if request.method != "POST":
        if response and response.state == SurveyResponse.State.FINAL and clock.now() > response.editable_until:
            return _closed(request, req)
        return _answer_page(request, req, survey=survey, post_url=post_url, score=None, response=response,
                            product_title=title)
    _, score, comment, review_title = _parse_post(request, req)
    target = existing or review_request_for_product(
        tenant=req.customer.tenant, customer=req.customer, order=req.order, product=product,
        because=f"offered after answering {req.survey.name}")
    try:
        outcome = answer_submit(survey_request=target, score=score, mode=AnswerAttempt.Mode.CONFIRM,
                                comment=comment, title=review_title, user_agent=request.headers.get("User-Agent", ""))
    except ServiceError:
        return _answer_page(request, req, survey=target.survey, post_url=post_url, score=None, response=response,
                            product_title=title, error=t(req.customer.locale, "choose"), status=400)
    if outcome.state == "closed":
        return _closed(request, req)
    return _thanks(request, target, token, outcome.response)
