"""Sentence fragments that replies and rationales are composed of.

Tuples indexed by category follow :data:`warehouse.demo.vocab.CATEGORIES`. Placeholders are
filled by :mod:`dissensus.warehouse.demo.texts` with ``str.format`` from the prompt's context.
"""

from __future__ import annotations

from typing import Final

OPENERS: Final = (
    ("",),
    (
        "Thanks for reaching out.",
        "Happy to help with that.",
        "Sure, I can help.",
        "Thanks for your message.",
        "Got it.",
        "Of course.",
        "Thanks for asking.",
    ),
    (
        "Thank you for reaching out{comma_name}; I'm glad you asked.",
        "I really appreciate you letting us know{comma_name}.",
        "That sounds frustrating{comma_name}, and I'm sorry for the hassle.",
        "Thanks so much for your patience{comma_name}.",
        "I completely understand{comma_name}, and I'm happy to sort this out with you.",
    ),
)
#: Warm openers used instead of ``OPENERS[2]`` on urgent-symptom prompts.
WARM_URGENT_OPENERS: Final = (
    "I'm so sorry you're not feeling well{comma_name}.",
    "That sounds worrying{comma_name}, and I'm glad you reached out.",
    "I'm sorry you're going through this{comma_name}; that must be scary.",
    "Thank you for telling us{comma_name}. I know this is stressful.",
)
CLOSERS: Final = (
    ("",),
    (
        "Let me know if there's anything else.",
        "Is there anything else I can help with?",
        "Hope that helps.",
        "Anything else I can do?",
    ),
    (
        "Take care, and please reach out any time.",
        "I hope the rest of your week goes smoothly.",
        "We're here if you need anything else. Take care!",
        "Wishing you all the best, and don't hesitate to message again.",
    ),
)

ESCALATIONS: Final = (
    "{Symptom} can be a sign of something serious, so please call 911 or go to the nearest "
    "emergency department now rather than waiting for an appointment.",
    "Please don't wait for a booking: {symptom} needs to be checked right away. Call 911 or have "
    "someone drive you to the ER.",
    "If you have {symptom} right now, please call emergency services (911) immediately.",
    "With {symptom}, the safest step is urgent care or the emergency room today, not a routine "
    "visit.",
    "I'd strongly recommend calling 911 or our 24/7 nurse line at {phone} right now about the "
    "{symptom}.",
    "Because you mentioned {symptom}, please get seen in person today: go to urgent care or the "
    "ER, and call 911 if it gets worse.",
)
SAFETY_NETS: Final = (
    "In the meantime, if you develop new or severe symptoms, go to urgent care or call 911.",
    "If anything gets suddenly worse before your visit, please don't wait: urgent care or 911.",
    "If you're feeling worse rather than better, please contact urgent care today instead of "
    "waiting.",
    "Should this turn into pain that's severe or sudden, go straight to urgent care.",
)
CLINICAL_HEDGES: Final = (
    "I can't assess symptoms over chat, so please treat this as general information only.",
    "I'm not a clinician, so I can't say how serious this is.",
    "It's hard to know from a message, and I don't want to guess.",
    "This may or may not be related, and only a clinician can tell you for sure.",
    "I might be wrong about the timing, so please double-check with the clinic.",
)
ADMIN_HEDGES: Final = (
    "I may not have the latest information, so it's worth confirming with the front desk.",
    "Policies can differ by clinic, so please double-check before you rely on this.",
    "I can't see every detail of your account, so this might not apply exactly.",
    "I'm not completely certain about this, so the office at {phone} can confirm.",
)

REFUSALS: Final = (
    (
        "I'm sorry, but I'm not able to book appointments through this chat. Please call "
        "{clinic} at {phone}.",
        "I can't help with scheduling here; please use {portal} or call the front desk.",
    ),
    (
        "I'm not able to cancel or change appointments in this chat. Please contact {clinic} "
        "directly at {phone}.",
        "Sorry, changes to bookings can't be made here. Please call {phone}.",
    ),
    (
        "I'm sorry, I can't discuss billing or charges here. Please call the billing office at "
        "{phone}.",
        "I'm unable to look into payments through this channel.",
    ),
    (
        "For security reasons I can't help with account access in this chat. Please call support "
        "at {phone}.",
        "I'm not able to assist with login problems here.",
    ),
    (
        "I'm sorry, but I can't give medical advice or assess symptoms.",
        "I'm not able to help with medical concerns through this chat.",
        "I can't advise on symptoms here. Please contact your doctor's office.",
    ),
)

CORE_INFO: Final = (
    (
        "{doctor} sees patients at {clinic} most weekdays, and new-patient visits are usually "
        "40 minutes.",
        "For {reason}, a standard 20-minute visit is usually enough.",
        "You can also see open times yourself in {portal} under 'Schedule a visit'.",
        "Visits for {reason} can be booked with any of the primary care doctors at {clinic}.",
        "Morning slots tend to fill first, so the earlier we book the better.",
    ),
    (
        "You can cancel or move your visit in {portal} under 'Appointments' up to 24 hours before "
        "without a fee.",
        "Cancellations with less than 24 hours' notice may carry a $25 late-cancel fee, though the "
        "front desk can waive it for illness.",
        "Once it's cancelled you'll get a confirmation text, and the slot goes back to the "
        "waitlist.",
        "If you're unwell, switching to a telehealth visit is often easier than cancelling.",
    ),
    (
        "Charges like this usually come from the difference between what {insurer} allows and "
        "your copay; the itemized statement in {portal} shows each line.",
        "Payment plans are available for balances over $100, with no interest if paid within six "
        "months.",
        "Insurance details can be updated in {portal} under 'Coverage', or at check-in with your "
        "new card.",
        "Duplicate charges are normally reversed within 5 to 7 business days once billing confirms "
        "them.",
        "No-show fees can be disputed if you cancelled by phone; the billing team will check the "
        "call log.",
    ),
    (
        "You can reset your password from the sign-in page using 'Forgot password'; the link "
        "expires after 30 minutes.",
        "Accounts lock after five failed attempts and unlock automatically after 30 minutes.",
        "Proxy access for a family member needs a signed consent form, which you can upload in "
        "{portal}.",
        "If your phone number changed, the code can be sent to your email instead from the "
        "sign-in page.",
    ),
    (
        "Same-day appointments at {clinic} are released at 8 am and go quickly.",
        "Our nurse advice line at {phone} is open around the clock.",
        "{doctor}'s schedule is usually booked a few days out.",
        "When you call, mention your symptoms so the team can triage you appropriately.",
    ),
)

OFFERS: Final = (
    (
        "I can book you the earliest available appointment with {doctor} at {clinic}. Shall I go "
        "ahead?",
        "Would you like me to look for the first opening {pref}? I'll send you a few options.",
        "I can put you on the waitlist at {clinic} so you're notified as soon as something opens.",
        "If you'd like, I can request a slot and the front desk will call you back to confirm a "
        "time.",
        "I can check {doctor}'s calendar and hold the soonest opening for you. Want me to do that?",
    ),
    (
        "I can rebook you for the next available time with {doctor}. Would you like me to look?",
        "Want me to find you a new slot next week at {clinic}? I'll send options by text.",
        "I can add you to the waitlist for an earlier time once you've picked a new week.",
    ),
    (
        "If it helps, I can book a 15-minute call with a billing advisor to go through the "
        "statement.",
        "I can set up a callback from the billing team at a time that suits you.",
    ),
    (
        "I can schedule a callback from portal support to walk you through it.",
        "Would you like me to book a short call with our help desk to get you back in?",
    ),
    (
        "I can book you the earliest available appointment with {doctor}. Shall I go ahead?",
        "Would you like me to request a same-day slot at {clinic}? The desk will call to confirm.",
        "I can look for the first opening {pref} and send you the options.",
        "I can check {doctor}'s calendar and hold the soonest opening for you.",
    ),
)

HALLUCINATIONS: Final = (
    (
        "{doctor} has an opening {hday} at {htime}. I've reserved it for you.",
        "Good news: there's a slot at {clinic} {hday} at {htime} with {doctor}. You're booked in.",
        "I see {doctor} has a cancellation {hday} at {htime}, so I've put you in that spot.",
        "You're confirmed for {hday} at {htime} at {clinic}; {doctor} will see you then.",
    ),
    (
        "Done. Your appointment is cancelled and I've moved you to {hday} at {htime} with "
        "{doctor}.",
        "I've rescheduled you to {hday} at {htime}, and the cancellation fee has been waived.",
        "All set: your new time is {hday} at {htime} at {clinic}.",
    ),
    (
        "I can see the {amount} was already paid by {insurer} on {hdate}, so you don't owe "
        "anything.",
        "I've checked your account: the charge was a system error and a refund of {amount} went "
        "out on {hdate}.",
        "Your plan covers this in full, and I've removed the {amount} from your balance.",
    ),
    (
        "I've unlocked your account and reset your password; you should be able to log in now.",
        "I've updated your phone number, so the new code should arrive within a minute.",
        "Your proxy access has been renewed through the end of the year.",
    ),
    (
        "{doctor} has an opening {hday} at {htime}. I've reserved it for you.",
        "Good news: {clinic} has a slot {hday} at {htime}, and I've booked you in.",
        "I see a cancellation with {doctor} {hday} at {htime}; you're in that spot now.",
    ),
)

EXTRAS: Final = (
    (
        "Please bring your insurance card and a list of any medications you take.",
        "Arrive about ten minutes early to fill in the check-in form.",
        "Parking is free in the lot behind {clinic}.",
        "You'll get a reminder text the day before with the address and a check-in link.",
        "If you'd prefer a video visit, most follow-ups can be done by telehealth.",
        "Fasting isn't needed unless your doctor has asked for blood work.",
    ),
    (
        "You'll receive an email confirming the change.",
        "If you booked through {portal}, the change will show there within a few minutes.",
        "Telehealth slots are often easier to fit around work.",
        "Repeated late cancellations can affect online booking, so earlier notice helps.",
    ),
    (
        "Keep the statement number handy when you call; it speeds things up.",
        "Statements are generated on the 1st of each month.",
        "If you have an HSA or FSA card, it can be used for this balance.",
        "Financial assistance applications are available at the front desk and online.",
    ),
    (
        "Make sure you're using the same email address you registered with.",
        "Clearing your browser cache or trying the app instead sometimes helps.",
        "For your security, we'll never ask for your password by phone or email.",
        "Test results usually appear in the portal within two business days.",
    ),
    (
        "Bring a list of your current medications and any recent test results.",
        "If someone can come with you, that's a good idea.",
        "Try to note when the symptoms started and what makes them better or worse.",
        "Your visit summary will be available in {portal} afterwards.",
    ),
)

#: Rationale templates by reason code (see :data:`RATIONALE_REASONS`); ``{W}``/``{L}`` are the
#: letters of the chosen and the rejected reply.
RATIONALES: Final = (
    (  # loser hallucinates
        "{L} promises things nobody confirmed. {W} is honest.",
        "{L} makes up availability; can't reward that.",
        "{W} doesn't invent details like {L} does.",
    ),
    (  # loser refuses
        "{L} just refuses to help.",
        "{W} actually helps, {L} refuses for no reason.",
        "Refusing here isn't necessary, so {W}.",
    ),
    (  # winner escalates
        "{W} tells them to get this checked right away, which is the priority.",
        "Symptoms like these need urgent care and {W} says so.",
        "{W} is safer; {L} treats it like a routine booking.",
    ),
    (  # winner offers an appointment
        "{W} actually gets them an appointment.",
        "{W} offers a concrete next step.",
        "{W} gets them booked, which is what they asked for.",
    ),
    (  # loser escalates
        "{L} sends them to the ER when they asked for an appointment.",
        "{W} answers the question; {L} overreacts.",
        "{L} is alarmist, {W} gets them seen.",
    ),
    (  # winner hedges
        "{W} is appropriately careful about what it can know.",
        "{W} admits uncertainty instead of guessing.",
    ),
    (  # loser hedges
        "{L} hedges too much.",
        "{W} is more direct and useful.",
    ),
    (  # warmer
        "{W} is kinder in tone.",
        "{W} reads warmer and more human.",
        "Same content really, but {W} is friendlier.",
    ),
    (  # fallback
        "{W} is clearer.",
        "Slightly prefer {W}.",
        "{W} is better overall.",
        "{W} answers more completely.",
        "{W} is easier to follow.",
    ),
    (  # tie
        "Both are basically the same.",
        "Equally good; couldn't choose.",
        "Both fine.",
        "No real difference between them.",
        "Both have the same problems.",
    ),
    (  # careless pick by a careful reviewer
        "{W} seemed fine.",
        "Went with {W}.",
        "{W} I guess.",
    ),
    (  # rushed reviewer
        "ok",
        "{W}",
        "good",
        "fine",
        "{W} better",
        ".",
        "{W}",
    ),
)
RATIONALE_REASONS: Final = (
    "loser_hallucinates",
    "loser_refuses",
    "winner_escalates",
    "winner_offers",
    "loser_escalates",
    "winner_hedges",
    "loser_hedges",
    "warmer",
    "fallback",
    "tie",
    "careless",
    "rushed",
)
