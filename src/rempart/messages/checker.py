"""The checker: every signal's reasons, one score, one verdict, always explained.

The score is the sum of the reasons' weights, kept within 0 and 100; the rules'
thresholds turn it into ``phishing``, ``suspicious`` or ``genuine-looking``. Reasons
come strongest first and the last one always says what the genuine channel is.
"""

from __future__ import annotations

from rempart.messages.model import Message, Reason, Verdict, VerdictLabel
from rempart.messages.notice_code import (
    NoticeCodeCheck,
    addressee_names,
    is_code_shaped,
    notice_codes,
)
from rempart.messages.rules import MessageRules
from rempart.messages.signals import SIGNALS, reason

__all__ = ["MessageChecker"]


class MessageChecker:
    def __init__(self, rules: MessageRules, notice_check: NoticeCodeCheck | None = None) -> None:
        self.rules = rules
        self._notice_check = notice_check

    def check(self, message: Message) -> Verdict:
        found: list[Reason] = []
        for signal in SIGNALS:
            found.extend(signal(message, self.rules))
        found.extend(self._notice_code(message))
        score = max(0, min(100, sum(r.weight for r in found)))
        thresholds = self.rules.thresholds
        label: VerdictLabel = (
            "phishing"
            if score >= thresholds.phishing
            else "suspicious"
            if score >= thresholds.suspicious
            else "genuine-looking"
        )
        ordered = sorted(found, key=lambda r: -abs(r.weight))  # stable: ties keep their order
        channel = reason("genuine_channel", self.rules.insurer.genuine_channel, 0)
        return Verdict(verdict=label, score=score, reasons=(*ordered, channel))

    def _notice_code(self, message: Message) -> list[Reason]:
        codes = notice_codes(message)
        if not codes:
            return []
        insurer, weights = self.rules.insurer, self.rules.weights
        page = insurer.verify_page
        made_up = reason(
            "notice_code_unknown",
            "Le message porte un code de vérification qui ne correspond à aucun courrier "
            f"envoyé par {insurer.name} : il imite un vrai message d'information.",
            weights.notice_code_unknown,
        )
        if not all(is_code_shaped(code) for code in codes):
            return [made_up]  # no genuine notice carries such a code
        if self._notice_check is None:
            return [
                reason(
                    "notice_code_unchecked",
                    "Le message porte un code de vérification : vérifiez-le vous-même sur "
                    f"{page} avec votre nom de famille.",
                    0,
                )
            ]
        names = addressee_names(message)
        check = self._notice_check
        if names:
            genuine = all(any(check(code, name) for name in names) for code in codes)
        else:
            genuine = all(check(code, None) for code in codes)
        if not genuine:
            return [made_up]
        if names:
            return [
                reason(
                    "notice_code_genuine",
                    "Le code de vérification correspond à un courrier réellement envoyé par "
                    f"{insurer.name}, à la personne que le message nomme.",
                    weights.notice_code_genuine,
                )
            ]
        return [
            reason(
                "notice_code_genuine",
                "Le code de vérification correspond à un message réellement envoyé par "
                f"{insurer.name}. Pour vous assurer qu'il vous était destiné, saisissez-le "
                f"avec votre nom de famille sur {page}.",
                weights.notice_code_genuine_unnamed,
            )
        ]
