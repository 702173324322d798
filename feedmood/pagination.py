"""Pagination for list endpoints (page size 20, ``?page_size=`` up to 100)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import pagination, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


def get_paginated_response(
    *,
    pagination_class: type[pagination.BasePagination] = PageNumberPagination,
    serializer_class: type[serializers.Serializer],
    queryset: QuerySet,
    request: Request,
    view: APIView,
    context: dict[str, Any] | None = None,
) -> Response:
    """Paginate ``queryset`` and serialise the page (HackSoft-style helper for APIViews)."""
    paginator = pagination_class()
    context = {"request": request, **(context or {})}
    page = paginator.paginate_queryset(queryset, request, view=view)
    if page is not None:
        return paginator.get_paginated_response(serializer_class(page, many=True, context=context).data)
    return Response(serializer_class(queryset, many=True, context=context).data)


def paginated_serializer(serializer_class: type[serializers.Serializer], name: str) -> serializers.Serializer:
    """Schema-only serializer describing a page of ``serializer_class`` (for extend_schema)."""
    from drf_spectacular.utils import inline_serializer

    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
