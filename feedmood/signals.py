"""Hooks other apps attach to.

Sent after the transaction commits:

- ``post_created(sender=Post, post=Post)``: a post was created (emotion analyses its image).
- ``consent_granted(sender=Profile, user=User, profile=Profile)``: emotion consent went False -> True.
- ``consent_withdrawn(sender=Profile, user=User, profile=Profile)``: consent went True -> False;
  the durable erasure of the user's emotion data is already recorded (``erasure_due`` does it).
- ``account_erased(sender=ErasureRequest, user_id=int)``: every row of a deleted account is gone
  (files may still be in progress); caches keyed by the user should be dropped.

Sent while building an export (``feedmood.export``):

- ``export_requested(sender=Profile, user=User)``: return ``{file name: JSON-ready data}``
  to add to the person's export zip.

Sent INSIDE the erasure's transaction (receivers must not swallow errors: a failure rolls the
erasure back and it is retried):

- ``erasure_due(sender=ErasureRequest, user_id=int, scope=str)``: delete the user's rows of
  your app that ``scope`` covers (``emotion`` or ``account``); return the storage names of
  files to delete (an iterable of str) or None.
"""

from django.dispatch import Signal

post_created = Signal()
consent_granted = Signal()
consent_withdrawn = Signal()
account_erased = Signal()
erasure_due = Signal()
export_requested = Signal()
