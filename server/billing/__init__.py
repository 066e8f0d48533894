"""Money: the ledger, wallets, invoices and Stripe."""
