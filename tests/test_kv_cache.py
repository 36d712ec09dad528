"""Per-conversation KV caches: prefix reuse bookkeeping and the least-recently-used budget."""

from __future__ import annotations

from engine.engine import Engine
from engine.generation import GenerationRequest
from engine.kv_cache import CachedConversation, ConversationCaches, common_prefix_length
from engine.sampling import SamplingSettings


class FakeLayer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def _entry(nbytes: int) -> CachedConversation:
    return CachedConversation([FakeLayer(nbytes)], [1, 2, 3])


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([5], [6]) == 0


def test_least_recently_used_goes_first_within_budget():
    caches = ConversationCaches(budget_bytes=250)
    caches.put("a", _entry(100))
    caches.put("b", _entry(100))
    caches.put("a", caches.take("a"))  # "a" used again: "b" is now the oldest
    caches.put("c", _entry(100))
    assert "b" not in caches and "a" in caches and "c" in caches
    assert caches.total_bytes() == 200


def test_the_conversation_just_used_stays_even_over_budget():
    caches = ConversationCaches(budget_bytes=50)
    caches.put("a", _entry(10))
    caches.put("big", _entry(500))
    assert "big" in caches and "a" not in caches


def test_engine_keeps_several_conversations_and_evicts_by_budget(llama2_chat):
    settings = SamplingSettings(temperature=0.0, max_tokens=4)

    def ask(engine, conversation):
        messages = [{"role": "user", "content": f"Hello from {conversation}"}]
        return engine.generate(GenerationRequest(messages, settings, conversation)).wait()

    def cached(engine):
        return engine.run(lambda loaded: sorted(engine.caches.keys())).result(timeout=30)

    with Engine(save_caches=False) as roomy:
        roomy.load(llama2_chat).wait()
        for name in ("a", "b", "c"):
            ask(roomy, name)
        assert cached(roomy) == ["a", "b", "c"]
        one_cache = roomy.run(lambda loaded: roomy.caches.get("a").nbytes).result(timeout=30)
    with Engine(cache_budget_bytes=int(2.5 * one_cache)) as tight:
        tight.load(llama2_chat).wait()
        for name in ("a", "b", "a", "c"):
            ask(tight, name)
        assert cached(tight) == ["a", "c"]  # b was the least recently used
        again = [{"role": "user", "content": "Hello from b"}]
        back = tight.generate(GenerationRequest(again, settings, "b")).wait()
        # The evicted cache was saved to disk on its way out, and comes back from there.
        assert (back.cache_source, back.reused_tokens) == ("disk", back.prompt_tokens - 1)
    with Engine(save_caches=False, cache_budget_bytes=int(2.5 * one_cache)) as forgetful:
        forgetful.load(llama2_chat).wait()
        for name in ("a", "b", "a", "c"):
            ask(forgetful, name)
        back = forgetful.generate(GenerationRequest(again, settings, "b")).wait()
        assert (back.cache_source, back.reused_tokens) == ("none", 0)
