"""The rule that finds the sent message a refusal is about (pure logic:
muca.client.sending); the browser's sending.js follows the same rule."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from muca.client.sending import SETTLE_SECONDS, SentMessages

ME = ("tony@hku.hk", "Tony")
MARY = "mary@hku.hk"
HENRY = "henry@hku.hk"
UNKNOWN = "not delivered to unknown user ids or nicknames: "


class RefusalMatchingTests(SynchronousTestCase):
    def test_a_refusal_at_once_goes_to_the_oldest_that_can_earn_it(self) -> None:
        sent = SentMessages(ME)
        to_mary = sent.sent((MARY,), "hi Mary", 0.0)
        to_me = sent.sent((ME[0],), "note to self", 0.1)
        refusal = sent.refused("NO_RECIPIENT", "yourself only", 0.2)
        assert refusal is not None
        self.assertIs(refusal.message, to_me)
        # Mary's was read before without a refusal: a later one still may come.
        later = sent.refused("STORE_UNAVAILABLE", "cannot store", 0.3)
        assert later is not None
        self.assertIs(later.message, to_mary)

    def test_unknown_recipient_names_the_message_and_says_whether_all_is_lost(
        self,
    ) -> None:
        sent = SentMessages(ME)
        group = sent.sent((MARY, HENRY), "to you two", 0.0)
        alone = sent.sent((HENRY,), "to Henry", 0.1)
        partial = sent.refused("UNKNOWN_RECIPIENT", UNKNOWN + HENRY, 0.2)
        assert partial is not None
        self.assertEqual((partial.message, partial.partial), (group, True))
        self.assertEqual(group.undelivered, (HENRY,))
        whole = sent.refused("UNKNOWN_RECIPIENT", UNKNOWN + HENRY, 0.3)
        assert whole is not None
        self.assertEqual((whole.message, whole.partial), (alone, False))

    def test_ids_with_commas_are_told_apart(self) -> None:
        sent = SentMessages(ME)
        odd = ("a, b", "c")
        message = sent.sent(odd, "x", 0.0)
        refusal = sent.refused("UNKNOWN_RECIPIENT", UNKNOWN + "a, b, c", 0.1)
        assert refusal is not None
        self.assertEqual((refusal.message, refusal.partial), (message, False))

    def test_a_store_refusal_goes_to_the_newest_waiting(self) -> None:
        sent = SentMessages(ME)
        first = sent.sent((MARY,), "before the outage", 0.0)
        second = sent.sent((MARY,), "during it", 0.5)
        refusal = sent.refused("STORE_UNAVAILABLE", "cannot store", 0.6)
        assert refusal is not None
        self.assertIs(refusal.message, second)
        self.assertEqual(sent.serials(), {first.serial})

    def test_after_the_settle_time_nothing_is_matched(self) -> None:
        sent = SentMessages(ME)
        sent.sent((MARY,), "long ago", 0.0)
        self.assertIsNone(
            sent.refused("STORE_UNAVAILABLE", "late", SETTLE_SECONDS + 0.1)
        )
        self.assertEqual(len(sent), 0)
