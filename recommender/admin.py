"""No admin for the recommender's derived data, on purpose.

``MoodState`` (a person's mood) and ``PostAffect`` (the affect read from the
faces in a person's photo) are per-person emotion data: they are never listed,
searched or filtered in the Django admin. Staff see moods only as the
dashboard's aggregates, each cell suppressed below k distinct users.
"""
