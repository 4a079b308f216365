"""The marketer's workspace at /app/: one tenant at a time, chosen in the URL.

Every page is `/app/<tenant slug>/…` and goes through `access.workspace_view`, which finds the
tenant among the signed-in user's memberships (anything else is a 404, so a URL never tells
whether another store exists) and refuses writes to roles that may only read.
"""
