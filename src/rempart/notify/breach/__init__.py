"""Breach notices (GDPR Art. 34): campaigns that tell each exposed person once, by
e-mail or letter, with a verification code the public page checks."""
