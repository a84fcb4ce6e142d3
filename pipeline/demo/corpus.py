"""The demo crawl's text, written for thresher (no fetched data): financial and general news
articles, pages in other languages, and spam. `pipeline.demo.crawl` wraps them in site
templates, syndicates some to other sites with edits, and writes WARC and JSONL files."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Article:
    slug: str
    domain: str  # "financial" | "general"
    title: str
    paragraphs: tuple[str, ...]


FINANCIAL = (
    Article("rates-hold", "financial", "Central bank holds rates steady as inflation cools", (
        "The central bank left its benchmark interest rate unchanged at 4.25 percent on Wednesday, saying that "
        "inflation had eased for a third straight month but remained above its two percent target.",
        "Policymakers voted seven to two to hold, with the two dissenters favouring a quarter-point cut. In its "
        "statement the committee said that wage growth had slowed and that the labour market was no longer as "
        "tight as it had been a year ago.",
        "Bond markets rallied after the decision. The yield on the two-year government note fell eight basis "
        "points to 3.91 percent, while the currency weakened slightly against the dollar and the euro.",
        "Economists said the bank was preparing the ground for a first cut in the spring. Several noted that "
        "the governor had dropped a phrase about the need to keep policy restrictive for an extended period.",
    )),
    Article("retailer-earnings", "financial", "Retailer beats profit forecasts on strong holiday sales", (
        "Shares in the country's largest department store chain rose eleven percent after the company reported "
        "quarterly earnings that comfortably beat analysts' expectations.",
        "Net income for the three months to January rose to 412 million dollars, or 1.86 dollars a share, from "
        "355 million a year earlier. Revenue increased six percent to 9.8 billion dollars, helped by online "
        "orders and a strong season for toys and electronics.",
        "The chief financial officer said that gross margins had improved because the company carried less "
        "excess inventory into the season and needed fewer markdowns to clear its shelves.",
        "For the full year the retailer expects earnings per share of between 4.10 and 4.35 dollars and plans "
        "to buy back up to two billion dollars of its own stock over the next eighteen months.",
    )),
    Article("oil-prices", "financial", "Oil prices climb after producers extend output cuts", (
        "Crude oil futures rose more than three percent on Monday after the main producer group agreed to extend "
        "its voluntary output cuts until the end of the second quarter.",
        "Brent crude for May delivery settled at 86.40 dollars a barrel, its highest close since October, and "
        "the American benchmark gained 2.71 dollars to 82.10 dollars.",
        "Traders said that inventories had fallen faster than expected and that refinery demand was picking up "
        "ahead of the summer driving season. Hedge funds increased their bets on higher prices for a fourth week.",
        "Analysts at several banks raised their price forecasts, although some warned that slower growth in "
        "factory activity could limit how far prices rise during the rest of the year.",
    )),
    Article("merger-deal", "financial", "Chemicals group agrees 14 billion dollar takeover of rival", (
        "A European chemicals group has agreed to buy a smaller American rival for 14 billion dollars in cash "
        "and shares, creating the world's second largest maker of specialty coatings.",
        "Shareholders of the target company will receive 48 dollars in cash and 0.35 of a new share for each share "
        "they own, a premium of 31 percent to the closing price before talks were first reported.",
        "The companies expect annual cost savings of about 600 million dollars within three years, mostly from "
        "combining purchasing, research and distribution. The deal still requires approval from regulators.",
        "Credit rating agencies placed the buyer's debt on review for a possible downgrade, noting that its "
        "leverage would rise to about three and a half times earnings before interest, tax and depreciation.",
    )),
    Article("bond-issue", "financial", "Government sells record volume of ten-year bonds", (
        "The finance ministry sold 32 billion dollars of ten-year bonds on Thursday, the largest auction of its "
        "kind, and demand was strong enough to push the yield below where it traded before the sale.",
        "The bid-to-cover ratio, a measure of demand, was 2.61 compared with an average of 2.49 over the past six "
        "auctions. Foreign central banks and pension funds took a larger share of the bonds than usual.",
        "Officials have increased the size of auctions to finance a wider budget deficit. Investors had worried "
        "that rising supply would force the government to pay higher interest rates to attract buyers.",
        "Strategists said the result eased those concerns for now, but that the market would remain sensitive "
        "to any sign that the deficit is growing faster than planned.",
    )),
    Article("startup-ipo", "financial", "Payments start-up prices shares at top of range in market debut", (
        "A payments technology company raised 1.2 billion dollars in its initial public offering after pricing "
        "its shares at 27 dollars, the top of the marketed range, valuing the business at 9.6 billion dollars.",
        "The stock opened at 33 dollars on its first day of trading and closed up 19 percent. It was the largest "
        "listing of a financial technology firm in more than two years.",
        "The company processes card payments for about two hundred thousand small businesses and earns fees on "
        "each transaction. It reported revenue of 830 million dollars last year and a small operating profit.",
        "Bankers said the strong debut could encourage other companies that had postponed listings to try "
        "again, though they cautioned that investors remain selective about valuations.",
    )),
    Article("currency-slide", "financial", "Yen slides to lowest level in three decades against the dollar", (
        "The yen weakened past 155 to the dollar on Tuesday for the first time since 1990, as the gap between "
        "interest rates in Japan and the United States kept investors selling the currency.",
        "The finance minister said the government was watching foreign exchange markets with a strong sense of "
        "urgency, language that traders took as a warning that officials could intervene to support the yen.",
        "A weaker currency raises the cost of imported energy and food but lifts the profits of exporters. The "
        "main stock index rose one percent, led by carmakers and electronics companies.",
        "Analysts said that intervention alone was unlikely to reverse the trend unless the central bank also "
        "signalled further increases in interest rates at its next meeting.",
    )),
    Article("bank-results", "financial", "Regional lender's profit falls as deposit costs rise", (
        "A regional bank reported a 22 percent fall in first-quarter profit on Friday, as it paid more to keep "
        "customers' deposits and set aside more money to cover possible losses on commercial property loans.",
        "Net interest income, the difference between what the bank earns on loans and pays on deposits, fell "
        "nine percent to 1.1 billion dollars. Provisions for credit losses rose to 240 million dollars.",
        "The chief executive said that office building loans were the main source of stress and that the bank "
        "had reduced its exposure to the sector by fifteen percent over the past year.",
        "The bank kept its dividend unchanged and said that its capital ratio remained well above regulatory "
        "requirements. Its shares fell four percent in morning trading.",
    )),
)

GENERAL = (
    Article("library-reopens", "general", "Town library reopens after two-year renovation", (
        "The town library reopened on Saturday after a two-year renovation that added a children's wing, a "
        "quiet reading room and a roof garden with views over the river.",
        "Hundreds of residents queued before the doors opened at nine o'clock. The head librarian said that more "
        "than four hundred people had signed up for new library cards by lunchtime.",
        "The original building, which dates from 1904, was restored with help from local volunteers who cleaned "
        "and repaired the oak shelves and the stained glass windows above the main staircase.",
        "The library will run free reading sessions for toddlers every weekday morning and homework clubs for "
        "older pupils in the afternoons during term time.",
    )),
    Article("comet-sighting", "general", "Astronomers spot comet that will be visible without a telescope", (
        "Astronomers say a newly discovered comet should be visible to the naked eye in the evening sky next "
        "month, the first such sight in the northern hemisphere for several years.",
        "The comet was found by an observatory in Chile in January and is now moving towards the inner solar "
        "system. It will pass closest to the sun in early October before swinging back out into deep space.",
        "Observers should look low in the western sky shortly after sunset, away from city lights. A pair of "
        "binoculars will show the tail, which may stretch across several degrees of sky.",
        "Scientists hope to study the gases released as the comet warms up, which can tell them about the "
        "materials that were present when the planets formed billions of years ago.",
    )),
    Article("cup-final", "general", "Late goal settles cup final in front of a record crowd", (
        "A header in the final minute of extra time gave the visitors a two-one victory in the cup final on "
        "Sunday, in front of a record crowd of more than eighty thousand people.",
        "The home side had taken the lead early in the second half when their captain curled a free kick into "
        "the top corner, but the visitors equalised with twenty minutes left after a long spell of pressure.",
        "Both teams had chances to win it in normal time. The home goalkeeper made a fine save from a close range "
        "shot, and a shot from the edge of the area struck the post with five minutes to go.",
        "The winning manager said he was proud of his players for keeping going when they were tired, and that "
        "the victory was for the supporters who had travelled across the country to watch.",
    )),
    Article("bread-recipe", "general", "How to bake a simple loaf of bread at home", (
        "Baking bread at home takes time but very little skill. You need flour, water, salt and a small amount "
        "of yeast, and a warm place where the dough can rise.",
        "Mix five hundred grams of strong white flour with ten grams of salt and seven grams of dried yeast. Add "
        "three hundred and fifty millilitres of warm water and stir until the dough comes together.",
        "Knead the dough on a floured surface for about ten minutes, until it feels smooth and springs back when "
        "you press it. Leave it in a covered bowl for an hour, or until it has doubled in size.",
        "Shape the dough into a loaf, let it rise again for half an hour, and bake it in a hot oven for thirty "
        "five minutes. The loaf is ready when it sounds hollow when you tap the bottom.",
    )),
    Article("mountain-trail", "general", "A walk along the old mountain trail to the lakes", (
        "The old trail to the lakes climbs gently through pine forest for the first two hours, following a "
        "stream that was once used to carry timber down to the valley.",
        "Above the tree line the path becomes rocky and walkers should wear good boots. On a clear day there are "
        "views across three valleys and, far to the south, the snow-covered peaks of the border range.",
        "The first lake is reached after about three hours. Many walkers stop here for lunch on the flat stones "
        "by the water, where marmots can often be seen sunning themselves in the afternoon.",
        "The round trip takes six to seven hours. Check the weather forecast before setting out, because storms "
        "can build quickly in the mountains during the summer months.",
    )),
    Article("sleep-advice", "general", "Doctors explain why a regular bedtime matters for health", (
        "Going to bed and getting up at the same time each day is one of the simplest ways to improve sleep, "
        "according to doctors who study sleep and the body clock.",
        "The body clock controls when we feel alert and when we feel tired. When bedtimes change a lot from day "
        "to day, the clock is disturbed in the same way as it is after a long flight across time zones.",
        "Adults need between seven and nine hours of sleep a night. Doctors recommend avoiding screens for an hour "
        "before bed, keeping the bedroom cool and dark, and not drinking coffee late in the day.",
        "People who still struggle to sleep after making these changes should talk to their doctor, as poor sleep "
        "can be linked to other health problems that can be treated.",
    )),
    Article("old-bridge", "general", "The story of the stone bridge that survived three floods", (
        "The stone bridge at the edge of the village was built in 1732 by a mason whose name is carved into the "
        "keystone of the central arch, where it can still be read today.",
        "It has survived three great floods. In 1824 the water rose so high that it covered the parapets, and "
        "the villagers watched from the hillside, expecting the bridge to be swept away.",
        "The bridge was repaired after each flood using stone from the same quarry. Historians say this is why it "
        "looks much as it did when it was first built almost three hundred years ago.",
        "Today the bridge is closed to cars, and a footpath across it links the village to the meadows on the "
        "far bank, where a fair is held every summer.",
    )),
    Article("phone-review", "general", "Review: a mid-range phone with a battery that lasts two days", (
        "The new mid-range phone will not win prizes for its design, but its battery easily lasts two days of "
        "ordinary use, which is more than most flagship phones can manage.",
        "The screen is bright and sharp, and it is easy to read outdoors. The main camera takes good photos in "
        "daylight, although pictures taken at night are noisy and a little soft.",
        "The phone is fast enough for messaging, browsing and simple games. It slows down when many apps are "
        "open at once, and it sometimes takes a moment to switch between them.",
        "For people who care more about battery life than the latest features, it is a sensible choice, and the "
        "maker promises four years of software updates.",
    )),
)

FOREIGN = (
    ("de", "Neuer Radweg verbindet die Nachbarorte", (
        "Der neue Radweg zwischen den beiden Nachbarorten wurde am Samstag mit einem kleinen Fest eröffnet. "
        "Viele Familien fuhren die sieben Kilometer lange Strecke gleich am ersten Tag.",
        "Die Gemeinde hat zwei Jahre an dem Weg gebaut. Er führt am Fluss entlang und durch ein Waldstück, "
        "in dem neue Bänke und eine Schutzhütte für Wanderer aufgestellt wurden.",
    )),
    ("fr", "Le marché du samedi fête ses cent ans", (
        "Le marché du samedi matin a fêté ses cent ans ce week-end avec de la musique et des dégustations. "
        "Les producteurs de la région ont installé leurs stands sur la place de la mairie.",
        "Les habitants sont nombreux à y venir chaque semaine pour acheter des légumes, du fromage et du pain. "
        "Le maire a remercié les commerçants pour leur fidélité depuis tant d'années.",
    )),
    ("es", "La biblioteca municipal amplía su horario", (
        "La biblioteca municipal abrirá también los domingos a partir del próximo mes, después de que los "
        "vecinos pidieran más horas para estudiar y leer durante el fin de semana.",
        "El ayuntamiento ha contratado a dos personas más para atender la sala de lectura. Además, se "
        "organizarán talleres de escritura para jóvenes todos los sábados por la tarde.",
    )),
    ("it", "Riapre il teatro dopo i lavori di restauro", (
        "Il teatro della città riapre al pubblico dopo tre anni di lavori di restauro. Il primo spettacolo "
        "sarà un concerto dell'orchestra locale sabato sera.",
        "Durante i lavori sono stati rinnovati i palchi, il sipario e l'impianto di illuminazione. I biglietti "
        "per la serata di apertura sono andati esauriti in poche ore.",
    )),
)

SPAM = (
    ("cheap-pills", "BEST CHEAP PILLS ONLINE BUY NOW", "buy cheap pills online best price pills no prescription "
     "cheap pills buy now discount pills online pharmacy cheap cheap cheap best deals pills"),
    ("casino-bonus", "Casino bonus casino bonus free spins", "casino bonus free spins casino online casino bonus code "
     "free casino bonus no deposit casino bonus win big casino bonus today"),
    ("seo-links", "Links links links", "click here | best links | top sites | free download | click here | "
     "best links | top sites | free download | click here"),
)
