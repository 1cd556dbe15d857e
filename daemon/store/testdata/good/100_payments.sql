-- portable table of a domain package
CREATE TABLE payments_demo (id TEXT PRIMARY KEY, amount BIGINT NOT NULL, note TEXT NOT NULL DEFAULT '');
