-- Tests connect as `postgres` or as `root` (the local user on CI machines).
CREATE ROLE root SUPERUSER LOGIN;
