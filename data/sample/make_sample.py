"""Generate the jigsaw-kit made-up sample dataset.

Every comment below was invented for this project; nothing is copied from the
real competition data. The output mirrors the schema of the Kaggle competition
"Jigsaw - Agile Community Rules Classification" (train.csv, test.csv,
sample_submission.csv) so the kit's code paths can be exercised offline.

Regenerate the CSVs (deterministic, standard library only) with:

    python data/sample/make_sample.py
"""

import csv
import os
import random

SEED = 20250723
HERE = os.path.dirname(os.path.abspath(__file__))

TRAIN_COLUMNS = [
    "row_id",
    "body",
    "rule",
    "subreddit",
    "positive_example_1",
    "positive_example_2",
    "negative_example_1",
    "negative_example_2",
    "rule_violation",
]
TEST_COLUMNS = TRAIN_COLUMNS[:-1]

RULE_ADS = "No Advertising: Spam, referral links, unsolicited advertising, and promotional content are not allowed."
RULE_LEGAL = "No legal advice: Do not offer or request legal advice."
RULE_MEDICAL = (
    "No medical advice: Do not offer or request specific medical advice, diagnoses, or treatment recommendations."
)
RULE_SPOILERS = (
    "No spoilers: Do not reveal important details about the plot or ending "
    "of movies, TV shows, books, or games without a spoiler warning."
)
# Appears only in test.csv: its only labelled data are the test rows' examples.
RULE_FINANCE = "No financial advice: Do not offer or request specific investment, tax, or personal financial advice."

SUBREDDITS = {
    RULE_ADS: ["soccerstreams", "deals", "gaming", "AskReddit", "Music", "smallbusiness"],
    RULE_LEGAL: ["legaladvice", "AskReddit", "relationships", "personalfinance", "news", "Landlord"],
    RULE_MEDICAL: ["AskDocs", "health", "AskReddit", "Fitness", "Parenting", "nursing"],
    RULE_SPOILERS: ["movies", "television", "books", "gaming", "AskReddit", "FanTheories"],
    RULE_FINANCE: ["personalfinance", "investing", "AskReddit", "povertyfinance", "Frugal"],
}

# --------------------------------------------------------------------------
# Comment pools: (violating, not violating) per rule. All text is invented.
# --------------------------------------------------------------------------
POOLS = {
    RULE_ADS: (
        [
            "Tired of paying full price? Use my referral code SAVE20NOW at checkout on "
            "cheapkicksdepot.example and we both get $20 off!!",
            "\U0001f525 FREE LIVE STREAMS \U0001f525 All matches tonight in HD, no signup: "
            "http://streamzone-hd.example/live",
            "I run a small candle shop and we just launched our autumn line. Check it out at "
            "[EmberWick Candles](https://emberwick.example/shop) - 15% off with code REDDIT15.",
            "Make $500 a day from home with this one simple trick. DM me for details",
            "Hey everyone, my band just dropped our first EP! Stream it here:\n\n"
            "https://soundhub.example/the-rusty-kettles/first-light\n\n"
            "Likes and shares are super appreciated",
            "Best VPN deal of the year, 80% off only this weekend -> http://vpn-mega-sale.example/?ref=u8812",
            "Want followers fast? We sell real, active followers starting at $3.99. Visit growfast.example today!",
            "Join my Discord for daily crypto signals, 100% accuracy guaranteed: discord.example/invite/xq77",
            "[WATCH HD] Final round live | [Link 1](http://freesportsnow.example/final) | "
            "[Link 2](http://freesportsnow.example/final-mirror) | mobile friendly, no ads",
            "Cheap essay writing service, any subject, 24h delivery, plagiarism free. Email essaysfast@example.com",
            "Use my invite link and get your first three rides free: rideshare.example/invite/MARCO77",
            "Hot singles in your area want to meet you tonight \U0001f609 http://meetnow.example/go",
            "Buy gold for your favorite MMO at the lowest prices on the internet. Fast delivery, "
            "24/7 support, safe trading. goldvault.example",
            "I wrote an ebook on how I paid off $40k in 18 months, it's on sale for $2.99 this "
            "week only, link in my profile!",
            "Subscribe to my channel, I post gameplay every day and I'm trying to hit 1,000 subs "
            "before Friday: videos.example/c/PixelPaladin",
            "NEW MIXTAPE OUT NOW\nDOWNLOAD / STREAM:\nhttp://mixtapes.example/lil-quartz/vol-2",
            "Anyone who signs up through my link gets a free month of meal kits, and I get one "
            "too lol https://mealbox.example/r/jenna_k",
            "\u00a1Ofertas incre\u00edbles! Zapatillas de marca al 70% de descuento, "
            "env\u00edo gratis: http://zapatos-baratos.example",
            "HD STREAMS FOR TONIGHT'S DERBY\n=\n"
            "ENGLISH COMMENTARY >>> [Stream 1](http://derbylive.example/en/1)\n=\n"
            "SPANISH COMMENTARY >>> [Stream 2](http://derbylive.example/es/2)\n=\n"
            "BACKUP >>> [Stream 3](http://derbylive.example/backup)\n=\n"
            "Works on phones, tablets and smart TVs. No registration, no popups, no lag. "
            "Bookmark us for every match this season and tell your friends!",
        ],
        [
            "I bought the cheaper model last year and honestly regret it, the battery barely lasts a day.",
            "Here's the official patch notes if anyone wants to read them: "
            "https://support.gamestudio.example/patch-4-2",
            "Is it just me or are there way more spam bots in this sub lately? Mods please do something.",
            'My brother tried one of those "make money from home" schemes and lost about $300. Stay away.',
            "The library near me has free passes to the museum, you just need a library card. Worth asking at yours.",
            "Does anyone have a recommendation for a decent budget mechanical keyboard? Under $60 if possible.",
            "Reported. That link in the comment above is a phishing site, don't click it.",
            "I love this band, saw them live in 2019 and they were incredible.",
            "Source for the claim in the title: [city council minutes](https://citycouncil.example/minutes/2023-05)",
            "Honestly the free version of the app does everything I need, no reason to pay for premium.",
            "Who else remembers when streams were just a guy with a webcam pointed at his TV lol",
            "lmao this ad played three times during the video, I counted",
            "We ended up going with a local contractor instead of the big chain. Took longer, "
            "but the work was way better.\n\nWould recommend shopping around.",
            "Thanks for the tip about the coupon at the register, saved me like 4 bucks on groceries today \U0001f604",
            "That's a great song. Reminds me of driving around with my dad in the summer.",
            "The stream kept buffering for me too, I gave up and listened on the radio.",
            "Not sponsored or anything, but my old running shoes lasted 800 miles before "
            "falling apart. Pretty impressed.",
            "Why does every recipe site need a 2,000 word life story before the ingredients",
            "Can we get a rule against self-promotion? Every other post is someone's channel.",
            "lol same, I got that ad too",
        ],
    ),
    RULE_LEGAL: (
        [
            "Your landlord can't keep the deposit for normal wear and tear. Send a demand letter "
            "citing the statute and give them 14 days, then file in small claims.",
            "Don't talk to the police without a lawyer. Just say \"I'm invoking my right to "
            'remain silent" and nothing else.',
            "My ex won't let me see the kids on my weekend even though it's in the custody "
            "order. What are my legal options here?",
            "If the contract didn't have a non-compete clause you're free to work for the "
            "competitor, they can't sue you for that.",
            "Can I be fired for discussing my salary with coworkers? My manager said it's against policy.",
            "You should file a police report and then take them to small claims court, you'll "
            "easily win since you have the texts.",
            "Got a speeding ticket, 15 over. Should I contest it or just pay it? Will it go on my record?",
            "Honestly just stop paying the HOA fees, they can't actually foreclose on you over that.",
            "My employer hasn't paid me for my last two weeks. Is it legal for them to hold my "
            "check until I return the uniform?",
            "Technically since you never signed the lease renewal you're month-to-month now, so "
            "you only need to give 30 days notice.",
            "Record the conversation on your phone. In your state it's one-party consent so it's admissible.",
            "Neighbor's tree fell on my fence during the storm. Who is legally responsible for paying for the repair?",
            "You can sue for emotional damages too, tell them you want at least $10,000 or you'll take it to court.",
            "Is it illegal to drive with headphones in? A cop told me it was but I can't find anything about it.",
            "Just claim it was self-defense, they can't prove otherwise if there were no witnesses.",
            "\u00bfAlguien sabe si mi casero puede subir el alquiler a mitad del contrato? "
            "Vivo en Madrid y no tengo abogado.",
            "What happens legally if I move out of state with my kid before the custody hearing? Asking for myself.",
            "The store has to honor the price that was on the shelf tag, that's the law. Ask for a manager and insist.",
            "Okay so here's what you do. First, stop all contact with the contractor and keep "
            "every receipt, photo and text. Second, send a certified letter saying he has 10 "
            "days to finish the work or refund the deposit. Third, if he ignores it, file in "
            "small claims and ask for triple damages under the consumer protection act, "
            "judges hate unlicensed contractors. You don't need a lawyer for any of this.",
        ],
        [
            "I'm not a lawyer so I won't pretend to know, but please talk to an actual attorney about this.",
            "That courtroom drama show is so unrealistic, no judge would let someone yell like that.",
            "Congrats on passing the bar exam! All that studying paid off.",
            "My cousin is a paralegal and she says the hours are brutal but she loves it.",
            'This is why you always read the terms before you click "I agree" lol',
            "The law was changed in 2015 after the big court case, there's a good article about it on the news site.",
            "Hope everything works out for you and your kids. That sounds really stressful.",
            "Lawyers in movies always have these huge offices. My friend's firm is two rooms above a bakery.",
            "Anyone else watching the trial livestream? The defense attorney is surprisingly funny.",
            "Your local legal aid office might be able to help, they do free consultations for "
            "people under a certain income.",
            "Wait, so the guy sued his own insurance company and won? That's wild.",
            "I did jury duty last month. Mostly sitting in a hallway reading a book, honestly not bad.",
            "The comments here giving legal advice are scary. Nobody on reddit knows your jurisdiction.",
            "Read this thread earlier and had to come back to see the update. Glad the "
            "landlord finally fixed the heater!",
            "Law school was the hardest three years of my life, but I'd do it again.",
            "Reminder that this sub can't give legal advice, see the sidebar for lawyer "
            "referral services: [referrals](https://reddit.example/r/legalquestions/wiki/referrals)",
            "I watched a documentary about the history of jury trials, really interesting "
            "stuff.\n\nApparently juries used to be locked in without food until they reached "
            "a verdict.",
            "Bruh the fine print on that contract was literally 6pt font \U0001f602",
            "Not a lawyer, but yikes.",
        ],
    ),
    RULE_MEDICAL: (
        [
            "You should double your dose of ibuprofen, the label amount is way too conservative.",
            "That rash sounds like shingles. Get some antiviral cream and you'll be fine, no need to see a doctor.",
            "I've had a sharp pain in my lower right abdomen for two days. Should I go to the ER or wait it out?",
            "Stop taking the antidepressant cold turkey, your body will adjust in a few days.",
            "Can I take melatonin with my blood pressure medication? My doctor is on vacation.",
            "Apple cider vinegar cured my acid reflux. Take two tablespoons before every meal and skip the pills.",
            "Sounds like a classic migraine. Try 200mg of magnesium and a cold compress, works every time.",
            "My toddler has a fever of 39.5 and won't eat. What dose of children's paracetamol should I give?",
            "Your symptoms are exactly what I had with my thyroid, ask for levothyroxine, it'll fix everything.",
            "Honestly you don't need the antibiotics, just drink lots of water and garlic tea.",
            "Is it normal for a mole to change color and bleed? Should I be worried or is it nothing?",
            "Skip the cast, a sprained wrist heals better if you keep moving it. Trust me, I've had five.",
            "If your blood sugar is above 250 just take an extra 4 units of insulin, that's what I do.",
            "What's the best thing to take for a UTI if I can't get to a doctor until Monday?",
            "Essential oils worked better than my inhaler. Lavender and eucalyptus, 3 drops, twice a day.",
            "Mein Arzt hat mir Antibiotika verschrieben, aber ich f\u00fchle mich schon "
            "besser. Kann ich sie einfach absetzen?",
            "Bro just take two of the sleeping pills instead of one, that's what I do when I can't sleep",
            "Just take two Advil, you'll be fine",
            "Sounds like anxiety to me, not your heart. You can probably skip the cardiologist appointment.",
        ],
        [
            "Please see a doctor, nobody on the internet can diagnose you from a paragraph.",
            "My grandma was a nurse for 40 years and still tells the best hospital stories.",
            "Glad to hear the surgery went well! Wishing you a quick recovery.",
            "The waiting room at my clinic has the same magazines from 2012, I swear.",
            "Here's the public health page about flu season if anyone's curious: https://health.example.gov/flu-season",
            "I started walking 30 minutes a day and honestly my mood is so much better.",
            "Medical dramas are fun but the way they do CPR on TV is hilariously wrong.",
            "Anyone else get weirdly emotional after getting blood drawn? Just me?",
            "Our hospital finally added free parking for patients, which is a big deal around here.",
            "I'm a pharmacy tech and the amount of people who yell at us about insurance is wild.",
            "Happy to report I'm 2 years cancer-free as of today \U0001f389 Thank you all for the support.",
            "That study was on mice, so take the headline with a grain of salt.",
            "Thank you for sharing your story. It helps to know other people are dealing with chronic pain too.",
            "Does anyone know a good book about the history of vaccines? Looking for something "
            "readable, not a textbook.",
            "Please don't take dosage advice from strangers online, call your pharmacist, "
            "they're usually happy to help.",
            "My doctor's handwriting is so bad the pharmacist had to call her to check what it said, lol.",
            "Medical school applications are brutal.\n\nI applied to 24 schools, got 3 "
            "interviews and 1 acceptance. Don't give up!",
            'The "eat this one fruit to cure everything" posts in this sub are getting out of hand.',
            "I've worked night shifts in an emergency department for about six years now, and "
            "the thing nobody tells you is how quiet it gets at 4am. Then at 4:15 three "
            "ambulances arrive at once, the printer jams, and someone brings in a casserole "
            '"for the nurses". I wouldn\'t trade it for anything, but I do miss seeing the '
            "sun on weekdays.",
        ],
    ),
    RULE_SPOILERS: (
        [
            "Can't believe the captain turns out to be the traitor in the last episode, totally didn't see it coming.",
            "The dog dies at the end of the book. Just so you're prepared.",
            "lol wait until you get to the part where the whole city floods and the main character loses her memory",
            "Season 3 finale: the brothers were the same person the whole time. Mind blown.",
            "The final boss is actually your mentor from the tutorial, which is why he keeps "
            "disappearing in chapter 4.",
            "Don't get too attached to Rowan, he gets killed off halfway through the second book.",
            "It was all a dream. The entire movie. The last shot is her waking up in the hospital.",
            "Honestly the twist where the narrator was the killer was pretty obvious from the first chapter.",
            "The two leads don't end up together, she moves to Lisbon and he marries her sister. Sorry.",
            "I cried when the robot sacrifices itself to save the ship in the final scene \U0001f62d",
            "In the new DLC you find out the queen poisoned the king, which explains the whole first game.",
            'So the "villain" was right all along and the heroes basically doomed the world. Great ending.',
            "For the people who haven't seen it: the ghost is the little girl's mother. (Whoops, forgot the tag.)",
            "The last episode jumps 20 years ahead and shows that the detective never actually solved the case.",
            "Fun fact: the mayor and the monster are voiced by the same actor because they're the same character.",
            "Wait till the wedding episode, literally everyone dies except the groom",
            "Vera was the killer.",
            "\u6700\u5f8c\u306b\u4e3b\u4eba\u516c\u304c\u6b7b\u306c\u306a\u3093\u3066"
            "\u4fe1\u3058\u3089\u308c\u306a\u3044\u3002 (Can't believe the main character "
            "dies at the end.)",
            "The heist fails, everyone gets arrested, and the credits roll over the empty vault. Bleak.",
        ],
        [
            "No spoilers please, but is the ending worth it? I'm on episode 6 and it's dragging.",
            "Just finished the book, >!the ending!< wrecked me. Don't want to say more.",
            "The soundtrack for this show is incredible, I've had the main theme on repeat all week.",
            "I went in knowing nothing and I'm so glad I did. Avoid the trailers if you can!",
            "The cinematography in the desert scenes was unreal, every frame looked like a painting.",
            "Spoiler-free review: great acting, slow first half, amazing last 40 minutes. 8/10.",
            "Anyone know when season 4 comes out? I've been waiting forever.",
            "Please tag your posts, some of us are still on the first season!",
            "The director said in an interview that the sequel is already written: "
            "[interview](https://movienews.example/interviews/director-sequel)",
            "I can't decide whether to read the book first or watch the show. Which would you recommend?",
            ">!The twist in chapter 12!< is the best thing I've read all year, properly tagged for you all.",
            "The game is on sale this weekend, if you were waiting for a price drop.",
            "My partner fell asleep 20 minutes into the movie, so I'll have to watch it again with her, lol",
            "Without giving anything away, the third act completely changes how you see the first two.",
            "This trailer shows way too much. I stopped watching after 30 seconds.",
            "Rewatched the whole series over the holidays.\n\nIt holds up so well, even the early episodes.",
            "Does anyone else think the theater was way too cold? I was shivering the entire time \U0001f976",
            "The book and show diverge a lot after season 2, so they're basically separate stories now.",
        ],
    ),
    RULE_FINANCE: (
        [
            "Put your whole emergency fund into this small-cap stock, it's going to triple by spring.",
            "Should I cash out my 401k to pay off my credit cards? About $18k in debt at 24% APR.",
            "Buy the dip on leveraged ETFs and hold for 5 years, guaranteed returns. Trust me.",
            "Skip the Roth, just put everything into index funds in a taxable account and never sell.",
            "Is it a good idea to take a second mortgage to buy crypto right now? Rates seem low.",
            "You can deduct your home office even if it's your kitchen table, just claim 30% of your rent.",
            "Sell all your bonds now, rates are going up and they'll lose half their value.",
            "How much of my paycheck should I put into stocks vs savings? I make 52k, no debt.",
        ],
        [
            "Personal finance subreddits are full of people who inherited money giving advice, lol.",
            "I finally made a budget spreadsheet and seeing where my money goes is terrifying.",
            "My grandpa kept cash in a coffee can his whole life. Different times.",
            "Talk to a fee-only fiduciary if you want real advice, not randoms on the internet.",
            "The documentary about the 2008 crash was really good, explains it in simple terms.",
            "Congrats on paying off your student loans! That must feel amazing \U0001f389",
            "Does anyone know a good beginner book on how the stock market works? Just for general understanding.",
            "My bank changed its app again and now I can't find the transfer button anywhere.",
            "Interesting article on how inflation is measured: https://econexplained.example/cpi-basics",
        ],
    ),
}

TRAIN_RULES = [RULE_ADS, RULE_LEGAL, RULE_MEDICAL, RULE_SPOILERS]

# A deliberately ambiguous comment that appears twice in train under RULE_ADS,
# once labelled 1 and once labelled 0 (conflicting labels, as in the real data).
# It is never used as an example text.
CONFLICT_RULE = RULE_ADS
CONFLICT_BODY = (
    "Check out my friend's bakery if you're ever in town, best croissants ever. https://crumbandcrust.example"
)

# Bodies repeated verbatim (same rule, same label) as exact duplicate rows.
DUPLICATES = [
    (RULE_ADS, 1, 3),  # (rule, label, index into the rule's pool for that label)
    (RULE_LEGAL, 1, 4),
    (RULE_MEDICAL, 0, 0),
    (RULE_SPOILERS, 1, 1),
]

# New, unlabelled test bodies for rules that are also in train.
TEST_NEW_BODIES = {
    RULE_ADS: [
        "Looking for beta testers for my budgeting app! Sign up and get lifetime premium "
        "free: https://penny-plan.example/beta",
        "Does anyone actually click on those sponsored posts? Genuinely curious.",
        "LIVE NOW >> [Stream HD](http://tv-free-live.example/ch4) << no registration needed",
        'Got scammed by a "free trial" that charged me $49 a month. Read the fine print, folks.',
    ],
    RULE_SPOILERS: [
        "The bit where the lighthouse keeper reveals he's been dead all along gave me chills.",
        "Is the new season worth watching? No spoilers please.",
        "Without spoiling anything: bring tissues.",
    ],
    RULE_LEGAL: [
        "My boss says I have to work unpaid overtime or get fired. Is that even legal?",
    ],
}
# How many labelled train bodies to repeat in test, per rule.
TEST_REPEATS = {RULE_ADS: 3, RULE_SPOILERS: 3, RULE_LEGAL: 2}
N_TEST_FINANCE = 7


def _eligible(pool):
    return pool[: max(3, int(len(pool) * 0.6))]


def pick_examples(rng, rule, body):
    """Two positives and two negatives from the rule's pool, never equal to body."""
    # Only the first 60% of each pool is ever used as an example, so (as in the real data, where
    # about 40% of bodies never appear as examples) some bodies can be validated on without leaks.
    pos_pool = [t for t in _eligible(POOLS[rule][0]) if t != body]
    neg_pool = [t for t in _eligible(POOLS[rule][1]) if t != body]
    pos = rng.sample(pos_pool, 2)
    neg = rng.sample(neg_pool, 2)
    return pos + neg


def build_train(rng):
    items = []  # (rule, body, label)
    for rule in TRAIN_RULES:
        viol, ok = POOLS[rule]
        items += [(rule, t, 1) for t in viol]
        items += [(rule, t, 0) for t in ok]
    for rule, label, idx in DUPLICATES:
        pool = POOLS[rule][0] if label == 1 else POOLS[rule][1]
        items.append((rule, pool[idx], label))
    items.append((CONFLICT_RULE, CONFLICT_BODY, 1))
    items.append((CONFLICT_RULE, CONFLICT_BODY, 0))
    rng.shuffle(items)

    rows = []
    for row_id, (rule, body, label) in enumerate(items):
        examples = pick_examples(rng, rule, body)
        subreddit = rng.choice(SUBREDDITS[rule])
        rows.append([row_id, body, rule, subreddit] + examples + [label])
    return rows


def build_test(rng, first_id):
    items = []  # (rule, body)
    for rule, bodies in TEST_NEW_BODIES.items():
        items += [(rule, b) for b in bodies]
    for rule, n in TEST_REPEATS.items():
        labelled = POOLS[rule][0] + POOLS[rule][1]
        items += [(rule, b) for b in rng.sample(labelled, n)]
    finance = POOLS[RULE_FINANCE][0] + POOLS[RULE_FINANCE][1]
    items += [(RULE_FINANCE, b) for b in rng.sample(finance, N_TEST_FINANCE)]
    rng.shuffle(items)

    rows = []
    for offset, (rule, body) in enumerate(items):
        examples = pick_examples(rng, rule, body)
        subreddit = rng.choice(SUBREDDITS[rule])
        rows.append([first_id + offset, body, rule, subreddit] + examples)
    return rows


def write_csv(name, header, rows):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8", newline="") as f:
        # Default QUOTE_MINIMAL; "\n" line endings like the competition files.
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def main():
    rng = random.Random(SEED)
    train = build_train(rng)
    test = build_test(rng, first_id=len(train))
    submission = [[row[0], 0.5] for row in test]
    for name, header, rows in (
        ("train.csv", TRAIN_COLUMNS, train),
        ("test.csv", TEST_COLUMNS, test),
        ("sample_submission.csv", ["row_id", "rule_violation"], submission),
    ):
        path = write_csv(name, header, rows)
        print(f"wrote {path} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
