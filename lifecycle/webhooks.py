"""Inbound storefront webhooks (Shopify, WooCommerce). Being written."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def shopify(request):
    return HttpResponse(status=501)


@csrf_exempt
@require_POST
def woocommerce(request, public_id):
    return HttpResponse(status=501)
