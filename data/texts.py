"""Sentences for the text-to-speech generators: varied, reproducible, no external corpus."""

from __future__ import annotations

import random

_SUBJECTS = ["The old fisherman", "My neighbour's daughter", "A tired nurse", "The new manager", "Our teacher",
             "The taxi driver", "A young student", "The mayor of the town", "Her younger brother", "The pilot",
             "A quiet librarian", "The football coach", "Grandmother", "The weather reporter", "A local farmer"]
_VERBS = ["carried", "painted", "forgot", "ordered", "repaired", "described", "found", "borrowed", "cleaned",
          "photographed", "delivered", "measured", "counted", "returned", "sold"]
_OBJECTS = ["a wooden chair", "the blue umbrella", "seven heavy boxes", "the broken radio", "a bag of apples",
            "the spare keys", "an old map of the harbour", "the letters from Paris", "a basket of bread",
            "the kitchen window", "twelve glass bottles", "the winter coats", "a small silver clock"]
_TIMES = ["before breakfast", "late last night", "on Tuesday morning", "during the storm", "after the meeting",
          "in the middle of summer", "just before midnight", "at the end of the week", "while it was raining"]
_TAILS = ["and nobody noticed.", "because the shop was closing.", "but it took much longer than expected.",
          "so we could leave early.", "which surprised everyone in the room.", "and then went straight home.",
          "although the road was closed.", "as the children watched from the stairs."]
_QUESTIONS = ["Could you tell me where the nearest train station is?", "Have you ever seen the northern lights?",
              "What time does the museum open on Sundays?", "Would you like another cup of tea?",
              "How many people are coming to dinner tonight?", "Did you remember to lock the back door?"]
_NUMBERS = ["Please call me back at {n1} {n2} {n3}.", "The total comes to {n1} dollars and {n2} cents.",
            "Your booking reference is {n1} {n2}.", "Flight {n1} leaves from gate {n2} at {n3} o'clock."]

_JAPANESE = [
    "今日はとても良い天気ですね。",
    "駅までの道を教えていただけますか。",
    "明日の会議は午後三時から始まります。",
    "このお店のパンはとてもおいしいです。",
    "週末は家族と一緒に海へ行きました。",
    "新しい本を図書館で借りました。",
    "電車が遅れているので少し待ってください。",
    "子供たちは公園で元気に遊んでいます。",
    "先生は毎朝早く学校に来ます。",
    "冬になると山の上に雪が積もります。",
    "昨日の夜は雨がたくさん降りました。",
    "私は毎日日本語を勉強しています。",
    "お茶をもう一杯いかがですか。",
    "この町には古いお寺がたくさんあります。",
]


def english_sentences(count: int, seed: int) -> list[str]:
    """`count` English sentences of varied form and length."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.6:
            sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TIMES)}"
            sentence += " " + rng.choice(_TAILS) if rng.random() < 0.7 else "."
        elif kind < 0.8:
            sentence = rng.choice(_QUESTIONS)
        else:
            sentence = rng.choice(_NUMBERS).format(n1=rng.randint(2, 99), n2=rng.randint(10, 99),
                                                   n3=rng.randint(1, 12))
        if rng.random() < 0.4:
            sentence += " " + rng.choice(_QUESTIONS)
        sentences.append(sentence)
    return sentences


def japanese_sentences(count: int, seed: int) -> list[str]:
    """`count` Japanese texts of one or two sentences."""
    rng = random.Random(seed)
    return ["".join(rng.sample(_JAPANESE, rng.randint(1, 2))) for _ in range(count)]
