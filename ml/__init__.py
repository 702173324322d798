"""FeedMood's facial-emotion-recognition toolkit: data, models, training, evaluation, export, runtime.

This package never imports Django; the service talks to it only through :mod:`ml.runtime`.
"""
