"""Hooks other apps attach to. All are sent after the transaction commits.

- ``post_created(sender=Post, post=Post)``: a post was created (emotion analyses its image).
- ``consent_granted(sender=Profile, user=User, profile=Profile)``: emotion consent went False -> True.
- ``consent_withdrawn(sender=Profile, user=User, profile=Profile)``: consent went True -> False;
  receivers must erase the user's emotion readings and selfies.
"""

from django.dispatch import Signal

post_created = Signal()
consent_granted = Signal()
consent_withdrawn = Signal()
