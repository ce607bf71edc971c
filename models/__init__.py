"""Records, features, scoring, tiers and the trained model artifacts (pure code)."""
