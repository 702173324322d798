"""FeedMood social core app (label ``feedmood``): profiles, posts, follows, reactions and shared plumbing."""
