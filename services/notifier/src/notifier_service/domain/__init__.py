"""The notifier's pure rules: kinds, texts, webhook signatures, SMTP URLs, retries. No I/O."""
