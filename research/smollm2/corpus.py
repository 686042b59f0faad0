"""Varied English text for the teacher-forced comparison: prose, lists, code, dialogue, numbers.
Written for this comparison (not taken from any dataset)."""

TEXT = r"""The lighthouse stood at the end of a narrow spit of land, and for most of the year nobody visited it except the keeper and the gulls. In winter the wind came off the sea in long, steady pushes that rattled the windows and made the lamp room hum like a struck glass. Mara had taken the job because she wanted quiet, and for the first month she got more of it than she knew what to do with. She read the logbooks of the keepers before her, written in pencil and then in ink and finally in a cheap ballpoint that had skipped on every third letter. They recorded the weather, the ships that passed, the hours the lamp was lit, and now and then something stranger: a light on the water where no boat should be, a knock at the door at three in the morning, a dog that nobody owned.

By spring she had started her own entries. Most were dull. "Wind NW, 20 knots. Fog until 10. Replaced the gasket on the generator." But on the fourteenth of April she wrote a longer note, and then crossed out half of it, and then wrote it again in the margin.

Here is a short list of what she kept in the storeroom, copied from the inventory she made that week:

1. Forty-two litres of diesel, in three red cans.
2. Two spare bulbs for the main lamp, each wrapped in newspaper from 1987.
3. A first-aid kit, mostly plasters and a bottle of iodine that had gone brown.
4. Six tins of peaches, four tins of beans, and one tin with no label at all.
5. A radio that could receive the shipping forecast but could not send anything.
6. A box of candles, a box of matches, and a very old chess set missing one white knight.

The chess set bothered her more than it should have. She replaced the knight with a bottle cap and played against herself in the evenings, which is harder than it sounds, because you always know what the other side is planning.

Meanwhile, in a small office two hundred miles away, a programmer named Theo was trying to understand why the tide predictions for the whole coast were off by exactly one hour. He opened the code and found this:

def predict_tide(station, when):
    # harmonic constants are stored in UTC
    constants = load_constants(station)
    t = (when - EPOCH).total_seconds() / 3600.0
    height = constants.mean
    for c in constants.components:
        height += c.amplitude * math.cos(math.radians(c.speed * t - c.phase))
    return height

"Of course," he said out loud, to nobody. The function assumed that `when` was in UTC, but the caller passed local time, and since the clocks had changed in March every prediction had slipped. He wrote a test first:

def test_predictions_are_timezone_aware():
    summer = datetime(2023, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/London"))
    winter = summer.astimezone(timezone.utc)
    assert predict_tide(STATION, summer) == predict_tide(STATION, winter)

The test failed, which was the point. Then he fixed the caller, ran the suite again, and watched all 318 tests pass in 4.2 seconds.

The numbers that week were not good for anyone. The regional ferry company reported that 12,480 passengers had travelled in March, down from 15,902 the year before, a fall of about 21.5 percent. Fuel costs had risen from 1.42 to 1.87 per litre. The company's chief executive, in a statement that ran to three pages, blamed the weather, the economy, and "a general reluctance among the public to go anywhere by boat." Analysts estimated that the company would need to carry at least 14,000 passengers a month, at an average fare of 23.50, simply to break even. In April the figure was 13,215.

A conversation overheard on the ferry, between two people who did not know each other:

"Is this the boat to the island?"
"It's the only boat. It goes to the island and then it comes back."
"How long does it take?"
"Forty minutes if the sea is calm. An hour if it isn't. Longer if the captain stops to look at seals."
"Does he do that often?"
"Every time. He says it's for the tourists, but there are never any tourists."
"Then who is it for?"
"The seals, I suppose. Or him."

They both laughed, and then they stood at the rail for a while without saying anything, watching the grey water fold and unfold behind the boat.

Some facts about lighthouses, collected from a pamphlet Mara found under the stairs:

- The first lighthouses burned wood or coal in open fires on top of towers.
- Oil lamps with reflectors replaced fires in the eighteenth century.
- The Fresnel lens, introduced in the 1820s, used rings of glass prisms to bend light into a single beam, and could be seen more than twenty miles away.
- Each lighthouse has its own pattern of flashes, called its character, so that sailors can tell them apart at night.
- Most lighthouses today are automated, and the last keepers in many countries left their posts in the 1990s.

She read the pamphlet twice and then used it to level the wobbling leg of the kitchen table.

In the summer a group of students came to measure the erosion of the cliffs. There were five of them and a supervisor, Dr. Okafor, who spoke quickly and wrote everything down in a waterproof notebook. They set up a grid of stakes along the cliff edge, each one exactly 2.5 metres from the next, and measured the distance from each stake to the edge every morning at 7:00. On the first day the average distance was 4.31 metres. By the end of the second week it was 4.18 metres, which meant the cliff was retreating by almost a centimetre a day, far faster than the historical rate of about 30 centimetres a year.

"That can't be right," said one of the students.
"It might be," said Dr. Okafor. "There was a storm on Tuesday. Storms do most of the work. The rest of the year the cliff just waits."

The students also wrote a small program to plot their data. It was not elegant, but it worked:

import csv
from statistics import mean

def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [(r["date"], float(r["distance_m"])) for r in rows]

def daily_means(rows):
    by_day = {}
    for date, d in rows:
        by_day.setdefault(date, []).append(d)
    return {date: mean(ds) for date, ds in sorted(by_day.items())}

for date, m in daily_means(load("stakes.csv")).items():
    print(f"{date}: {m:.3f} m")

When they left, they gave Mara a printed copy of their report, which concluded that the lighthouse itself would be safe for at least another eighty years, "barring exceptional events." She put it on the shelf next to the logbooks, where it seemed to belong.

Autumn came early. The first gale of the season arrived on the night of the ninth of September, and the barometer fell from 1012 to 981 millibars in less than twelve hours. Mara stayed up all night, checking the lamp every thirty minutes and writing down the readings: 995 at midnight, 989 at two, 984 at four, 981 at six. At a quarter past five the power failed, and the generator started on the second attempt. The lamp did not go out. In the morning the beach was covered with kelp and broken crates and, for some reason, hundreds of yellow rubber gloves.

Recipe for the soup she made that day, written on the back of an envelope:

Ingredients: two onions, three carrots, one potato, a tin of beans, a stock cube, salt, pepper, and whatever else is left.
Method: chop the onions and soften them in a little oil for ten minutes. Add the carrots and the potato, cut small, and cook for five minutes more. Add the beans, the stock cube, and about a litre of water. Simmer for twenty-five minutes, season, and eat it standing at the window while the sea calms down.

Later that month Theo took the ferry to the island, partly to see the lighthouse and partly because he had never been on a boat for longer than ten minutes. The captain stopped to look at seals. Theo counted eleven of them on a flat rock, and one more in the water, watching the boat with an expression he could only describe as patient. When he reached the lighthouse, Mara was repainting the door.

"You must be the tide man," she said. "The radio said the tables were wrong all summer."
"They were wrong for about six weeks," he said. "Daylight saving time. It's always daylight saving time."
"Is it fixed?"
"It's fixed. There's a test now."
"A test?"
"A small program that checks the big program. If anyone breaks it again, the test fails, and they'll know."
She thought about that. "I should have one of those for the generator."

They drank tea in the lamp room and looked at the water. Theo asked how many ships passed each week, and she fetched the logbook and counted: 37 in the first week of September, 41 in the second, 29 in the third, and only 18 in the fourth, because of the weather. He did the arithmetic in his head and said the average was 31.25, and she said that sounded about right, although no week had ever had a quarter of a ship in it.

Before he left, he asked her what she did all day. She said she kept the light, wrote the log, mended things, read, and played chess against herself. He asked who usually won. "The side with the bottle cap," she said, "but only because it has the most to prove."

On the ferry home he opened his laptop and wrote a short note to himself, which he later found and did not entirely understand:

TODO:
- check every function that takes a datetime
- ask Mara about the light on the water (14 April?)
- learn the names of the seals
- write a test for the generator

The light on the water was never explained. Mara's entry for that night, the one she crossed out and rewrote in the margin, said only this: "A steady white light, low on the water, two miles south-west, moving slowly east. No engine noise. No reply on the radio. Watched it for forty minutes. At 02:10 it went out. Not a ship. Not a star. Wrote it down so someone would know."
"""
