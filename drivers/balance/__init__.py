"""Gravimetric bench balances: the MT-SICS codec (:mod:`.mt_sics`) and driver
(:mod:`.mt_sics_balance`). A balance weighs what a pump delivered; it is never part of the
infusion path, so it talks to the accuracy test only, not to the supervisor."""
