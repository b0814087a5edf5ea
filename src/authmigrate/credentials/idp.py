"""Placeholder: helper B's idp scheme family lands here (see issue 3)."""
