"""nextAuth authentication server: ns, sfs and mc, and what they share."""
