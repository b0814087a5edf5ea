"""Placeholder: helper B's digest scheme family lands here (see issue 3)."""
