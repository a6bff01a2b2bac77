"""HQ operators: console accounts, roles and data scopes, and the write audit."""
