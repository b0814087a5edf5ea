"""In-process login-time migration: what a login path calls around ``verify_and_update``.

One module per framework or toolkit (:mod:`.sqlalchemy`: the compare-and-swap write of an
upgraded credential).
"""
