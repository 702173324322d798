"""Signals of the emotion app (the recommender listens to them).

All are sent after the transaction that caused them commits:

- ``analysis_finished(sender=ImageAnalysis, analysis=ImageAnalysis)``: an
  analysis reached a final status (``done``, ``no_face`` or ``failed``); its
  ``FaceReading`` rows for ``analysis.model_version`` are committed.
- ``readings_erased(sender=ImageAnalysis, user=User)``: every analysis and
  reading of ``user`` was deleted by a durable erasure (``feedmood.erasure``;
  selfie files follow in its second step).  ``user`` may be an unsaved
  instance carrying only the id (the account may be being deleted too).
- ``model_activated(sender=ModelVersion, version=ModelVersion)``: ``version``
  became the active model (new analyses use it).
"""

from django.dispatch import Signal

analysis_finished = Signal()
readings_erased = Signal()
model_activated = Signal()
