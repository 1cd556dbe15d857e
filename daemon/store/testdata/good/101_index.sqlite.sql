CREATE INDEX payments_demo_amount ON payments_demo (amount);
