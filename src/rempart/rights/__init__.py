"""The rights lookup: identity and rights of one insured person, by NIR and birth date."""
