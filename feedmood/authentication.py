"""Token authentication that reads the user's per-request rows with the token, in one query.

Keys are never stored: :class:`feedmood.models.ApiToken` keeps their SHA-256 and
an expiry (see ``feedmood.accounts``); the key sent is hashed and looked up.

Every API request authenticates, so this is the hottest query of the service. The ORM
spends ~0.5 ms of CPU compiling ``select_related`` over four tables for each request;
:class:`TokenRowsQuery` builds the same SQL once per process from the models' metadata
and turns the row into the same instances (with the same relation caches) that
``ApiToken.objects.select_related("user", "user__profile", ...).get(digest=...)`` would give.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, router
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from feedmood.models import ApiToken


@dataclass(frozen=True)
class _Part:
    """One model of the joined row: which columns it owns and how it hangs off the user."""

    model: type[Model]
    attnames: tuple[str, ...]
    start: int
    stop: int
    pk_index: int  # position of the primary key within this part's columns (None there: no related row)
    relation: object = None  # the user's reverse one-to-one relation (None: the token or the user)


class TokenRowsQuery:
    """``SELECT token, user, <one-to-one rows of the user> WHERE token.<key_field> = %s`` as one statement.

    ``related`` names reverse one-to-one relations of the user model (e.g. ``profile``);
    a missing related row is cached as ``None``, as ``select_related`` does.
    """

    def __init__(self, token_model: type[Model], related: tuple[str, ...], using: str, key_field: str = "digest"):
        user_field = token_model._meta.get_field("user")
        user_model = user_field.related_model
        connection = connections[using]
        qn = connection.ops.quote_name
        tables = [(token_model, "t", None), (user_model, "u", None)]
        joins = [
            f"INNER JOIN {qn(user_model._meta.db_table)} u "
            f"ON u.{qn(user_field.target_field.column)} = t.{qn(user_field.column)}"
        ]
        for i, name in enumerate(related):
            rel = user_model._meta.get_field(name)
            if not (rel.one_to_one and rel.auto_created):
                raise ValueError(
                    f"FEEDMOOD_AUTH_USER_RELATED: {name!r} is not a reverse one-to-one relation of the user"
                )
            alias = f"r{i}"
            joins.append(
                f"LEFT JOIN {qn(rel.related_model._meta.db_table)} {alias} "
                f"ON {alias}.{qn(rel.field.column)} = u.{qn(rel.field.target_field.column)}"
            )
            tables.append((rel.related_model, alias, rel))
        columns: list[str] = []
        self.parts: list[_Part] = []
        #: (column index, expression, converters): what the ORM applies to each value it reads
        self.converters: list[tuple[int, object, list]] = []
        for model, alias, rel in tables:
            fields = model._meta.concrete_fields
            self.parts.append(
                _Part(
                    model,
                    tuple(f.attname for f in fields),
                    len(columns),
                    len(columns) + len(fields),
                    fields.index(model._meta.pk),
                    rel,
                )
            )
            for field in fields:
                expression = field.get_col(alias)
                converters = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
                if converters:
                    self.converters.append((len(columns), expression, converters))
                columns.append(f"{alias}.{qn(field.column)}")
        self.user_field = user_field
        self.using = using
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {qn(token_model._meta.db_table)} t {' '.join(joins)} "
            f"WHERE t.{qn(token_model._meta.get_field(key_field).column)} = %s"
        )

    def get(self, key: str) -> Model | None:
        """The token with ``token.user`` and the user's related rows loaded, or None."""
        connection = connections[self.using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [key])
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for index, expression, converters in self.converters:
            for convert in converters:
                row[index] = convert(row[index], expression, connection)
        token_part, user_part, *related = self.parts
        token = token_part.model.from_db(self.using, token_part.attnames, row[token_part.start : token_part.stop])
        user = user_part.model.from_db(self.using, user_part.attnames, row[user_part.start : user_part.stop])
        self.user_field.set_cached_value(token, user)
        for part in related:
            values = row[part.start : part.stop]
            obj = None
            if values[part.pk_index] is not None:
                obj = part.model.from_db(self.using, part.attnames, values)
                part.relation.field.set_cached_value(obj, user)
            part.relation.set_cached_value(user, obj)
        return token


@functools.cache
def token_rows_query(related: tuple[str, ...], using: str) -> TokenRowsQuery:
    return TokenRowsQuery(ApiToken, related, using)


def key_digest(key: str) -> str:
    """What is stored of a key: its SHA-256 (keys are 256 random bits, so no salt or slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>`` scheme with hashed, expiring keys.

    The key is hashed and looked up with its user; this also joins the one-to-one rows named in
    ``settings.FEEDMOOD_AUTH_USER_RELATED`` (the profile and the mood state), which
    the feed reads on every request: one precompiled query instead of two ORM queries.
    """

    model = ApiToken

    def authenticate_credentials(self, key: str):
        related = tuple(settings.FEEDMOOD_AUTH_USER_RELATED)
        token = token_rows_query(related, router.db_for_read(ApiToken)).get(key_digest(key))
        if token is None or token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(_("Invalid or expired token: sign in again at /api/auth/token/."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)
