"""Short-answer factual questions with gold aliases: world capitals, chemical symbols, authors of famous books,
currencies, planets, continents and painters. Facts are written below as data; the questions are templates
filled with them. Splits are drawn per category with the seed, so every split mixes all categories.

Columns: ``question`` (str), ``answers`` (list of gold aliases, the first one canonical), ``category``.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset, DatasetDict, Features, Sequence, Value

from hfdc.data.checks import SPLITS, check_count

# country: capital | aliases
CAPITALS = """
Afghanistan: Kabul
Albania: Tirana | Tirane
Algeria: Algiers
Argentina: Buenos Aires
Armenia: Yerevan
Australia: Canberra
Austria: Vienna | Wien
Azerbaijan: Baku
Bangladesh: Dhaka | Dacca
Belarus: Minsk
Belgium: Brussels
Bolivia: Sucre | La Paz
Bosnia and Herzegovina: Sarajevo
Brazil: Brasilia | Brasília
Bulgaria: Sofia
Cambodia: Phnom Penh
Cameroon: Yaounde | Yaoundé
Canada: Ottawa
Chile: Santiago
China: Beijing | Peking
Colombia: Bogota | Bogotá
Costa Rica: San Jose | San José
Croatia: Zagreb
Cuba: Havana | La Habana
Czech Republic: Prague | Praha
Denmark: Copenhagen
Ecuador: Quito
Egypt: Cairo
Estonia: Tallinn
Ethiopia: Addis Ababa
Finland: Helsinki
France: Paris
Georgia: Tbilisi
Germany: Berlin
Ghana: Accra
Greece: Athens
Guatemala: Guatemala City
Hungary: Budapest
Iceland: Reykjavik | Reykjavík
India: New Delhi | Delhi
Indonesia: Jakarta
Iran: Tehran | Teheran
Iraq: Baghdad
Ireland: Dublin
Israel: Jerusalem
Italy: Rome | Roma
Jamaica: Kingston
Japan: Tokyo
Jordan: Amman
Kazakhstan: Astana | Nur-Sultan
Kenya: Nairobi
Kuwait: Kuwait City
Laos: Vientiane
Latvia: Riga
Lebanon: Beirut
Libya: Tripoli
Lithuania: Vilnius
Luxembourg: Luxembourg | Luxembourg City
Madagascar: Antananarivo
Malaysia: Kuala Lumpur
Mali: Bamako
Mexico: Mexico City
Mongolia: Ulaanbaatar | Ulan Bator
Morocco: Rabat
Mozambique: Maputo
Myanmar: Naypyidaw | Nay Pyi Taw
Nepal: Kathmandu
Netherlands: Amsterdam
New Zealand: Wellington
Nicaragua: Managua
Nigeria: Abuja
North Korea: Pyongyang
Norway: Oslo
Oman: Muscat
Pakistan: Islamabad
Panama: Panama City
Paraguay: Asuncion | Asunción
Peru: Lima
Philippines: Manila
Poland: Warsaw | Warszawa
Portugal: Lisbon | Lisboa
Qatar: Doha
Romania: Bucharest
Russia: Moscow
Rwanda: Kigali
Saudi Arabia: Riyadh
Senegal: Dakar
Serbia: Belgrade
Singapore: Singapore
Slovakia: Bratislava
Slovenia: Ljubljana
Somalia: Mogadishu
South Korea: Seoul
Spain: Madrid
Sri Lanka: Sri Jayawardenepura Kotte | Kotte | Colombo
Sudan: Khartoum
Sweden: Stockholm
Switzerland: Bern | Berne
Syria: Damascus
Taiwan: Taipei
Tanzania: Dodoma
Thailand: Bangkok
Tunisia: Tunis
Turkey: Ankara
Uganda: Kampala
Ukraine: Kyiv | Kiev
United Kingdom: London
United States: Washington, D.C. | Washington | Washington DC
Uruguay: Montevideo
Uzbekistan: Tashkent
Venezuela: Caracas
Vietnam: Hanoi | Ha Noi
Yemen: Sanaa | Sana'a
Zambia: Lusaka
Zimbabwe: Harare
"""

# element: symbol
SYMBOLS = """
hydrogen: H
helium: He
lithium: Li
beryllium: Be
boron: B
carbon: C
nitrogen: N
oxygen: O
fluorine: F
neon: Ne
sodium: Na
magnesium: Mg
aluminium: Al
silicon: Si
phosphorus: P
sulfur: S
chlorine: Cl
argon: Ar
potassium: K
calcium: Ca
titanium: Ti
chromium: Cr
manganese: Mn
iron: Fe
cobalt: Co
nickel: Ni
copper: Cu
zinc: Zn
arsenic: As
selenium: Se
bromine: Br
krypton: Kr
silver: Ag
tin: Sn
iodine: I
xenon: Xe
tungsten: W
platinum: Pt
gold: Au
mercury: Hg
lead: Pb
radon: Rn
radium: Ra
uranium: U
plutonium: Pu
"""

# book: author | aliases
AUTHORS = """
Pride and Prejudice: Jane Austen | Austen
Emma: Jane Austen | Austen
Nineteen Eighty-Four: George Orwell | Orwell | Eric Arthur Blair
Animal Farm: George Orwell | Orwell | Eric Arthur Blair
Hamlet: William Shakespeare | Shakespeare
Macbeth: William Shakespeare | Shakespeare
Romeo and Juliet: William Shakespeare | Shakespeare
War and Peace: Leo Tolstoy | Tolstoy | Lev Tolstoy
Anna Karenina: Leo Tolstoy | Tolstoy | Lev Tolstoy
Crime and Punishment: Fyodor Dostoevsky | Dostoevsky | Dostoyevsky
The Brothers Karamazov: Fyodor Dostoevsky | Dostoevsky | Dostoyevsky
Don Quixote: Miguel de Cervantes | Cervantes
Moby-Dick: Herman Melville | Melville
The Great Gatsby: F. Scott Fitzgerald | Fitzgerald | Scott Fitzgerald
To Kill a Mockingbird: Harper Lee
The Catcher in the Rye: J. D. Salinger | Salinger | J.D. Salinger
Ulysses: James Joyce | Joyce
One Hundred Years of Solitude: Gabriel Garcia Marquez | Gabriel García Márquez | Garcia Marquez
Great Expectations: Charles Dickens | Dickens
Oliver Twist: Charles Dickens | Dickens
A Tale of Two Cities: Charles Dickens | Dickens
Jane Eyre: Charlotte Bronte | Charlotte Brontë
Wuthering Heights: Emily Bronte | Emily Brontë
Frankenstein: Mary Shelley | Mary Wollstonecraft Shelley
Dracula: Bram Stoker | Stoker
The Adventures of Tom Sawyer: Mark Twain | Twain | Samuel Clemens
Adventures of Huckleberry Finn: Mark Twain | Twain | Samuel Clemens
Les Miserables: Victor Hugo | Hugo
The Odyssey: Homer
The Divine Comedy: Dante Alighieri | Dante
Madame Bovary: Gustave Flaubert | Flaubert
The Old Man and the Sea: Ernest Hemingway | Hemingway
Brave New World: Aldous Huxley | Huxley
The Lord of the Rings: J. R. R. Tolkien | Tolkien | J.R.R. Tolkien
The Hobbit: J. R. R. Tolkien | Tolkien | J.R.R. Tolkien
Harry Potter and the Philosopher's Stone: J. K. Rowling | Rowling | J.K. Rowling
The Grapes of Wrath: John Steinbeck | Steinbeck
Of Mice and Men: John Steinbeck | Steinbeck
Lolita: Vladimir Nabokov | Nabokov
The Metamorphosis: Franz Kafka | Kafka
The Trial: Franz Kafka | Kafka
Faust: Johann Wolfgang von Goethe | Goethe
The Little Prince: Antoine de Saint-Exupery | Antoine de Saint-Exupéry | Saint-Exupery
Alice's Adventures in Wonderland: Lewis Carroll | Carroll | Charles Dodgson
Gulliver's Travels: Jonathan Swift | Swift
Robinson Crusoe: Daniel Defoe | Defoe
The Picture of Dorian Gray: Oscar Wilde | Wilde
Sense and Sensibility: Jane Austen | Austen
Fahrenheit 451: Ray Bradbury | Bradbury
The Origin of Species: Charles Darwin | Darwin
"""

# country: currency | aliases
CURRENCIES = """
Japan: yen | Japanese yen
United Kingdom: pound sterling | pound | British pound | sterling
United States: United States dollar | dollar | US dollar
India: Indian rupee | rupee
China: renminbi | yuan | Chinese yuan
Russia: Russian ruble | ruble | rouble
Switzerland: Swiss franc | franc
Mexico: Mexican peso | peso
Brazil: Brazilian real | real
South Africa: South African rand | rand
Sweden: Swedish krona | krona
Norway: Norwegian krone | krone
Denmark: Danish krone | krone
Poland: Polish zloty | zloty | złoty
Turkey: Turkish lira | lira
South Korea: South Korean won | won
Israel: Israeli new shekel | shekel | new shekel
Thailand: Thai baht | baht
Vietnam: Vietnamese dong | dong
Indonesia: Indonesian rupiah | rupiah
Nigeria: Nigerian naira | naira
Egypt: Egyptian pound | pound
Saudi Arabia: Saudi riyal | riyal
Hungary: Hungarian forint | forint
Czech Republic: Czech koruna | koruna | crown
Argentina: Argentine peso | peso
Canada: Canadian dollar | dollar
Australia: Australian dollar | dollar
Malaysia: Malaysian ringgit | ringgit
Philippines: Philippine peso | peso
Germany: euro
France: euro
Italy: euro
Spain: euro
Ukraine: Ukrainian hryvnia | hryvnia
Bangladesh: Bangladeshi taka | taka
Pakistan: Pakistani rupee | rupee
Kenya: Kenyan shilling | shilling
Iran: Iranian rial | rial
Romania: Romanian leu | leu
"""

# planet: question about it (the planet is the answer)
PLANETS = """
Which planet is closest to the Sun?: Mercury
Which planet is known as the Red Planet?: Mars
Which is the largest planet in the Solar System?: Jupiter
Which planet is famous for its prominent ring system?: Saturn
Which planet is the hottest in the Solar System?: Venus
Which planet rotates on its side, with an axial tilt of about 98 degrees?: Uranus
Which planet is farthest from the Sun?: Neptune
Which planet do we live on?: Earth | the Earth
Which planet has the Great Red Spot?: Jupiter
Which planet is the second closest to the Sun?: Venus
Which planet is the smallest in the Solar System?: Mercury
Which planet has the moon Titan?: Saturn
Which planet has the moons Phobos and Deimos?: Mars
Which planet was discovered by William Herschel in 1781?: Uranus
Which planet is often called Earth's twin because of its similar size?: Venus
Which planet has the moon Triton?: Neptune
Which planet is the fourth from the Sun?: Mars
Which planet is the sixth from the Sun?: Saturn
Which planet has the moon Io?: Jupiter
What is the brightest planet in the night sky?: Venus
"""

# country: continent | aliases
CONTINENTS = """
Kenya: Africa
Peru: South America
Mongolia: Asia
Portugal: Europe
Canada: North America
Fiji: Oceania | Australia
Chile: South America
Egypt: Africa
Thailand: Asia
Norway: Europe
Guatemala: North America | Central America
Nigeria: Africa
Uruguay: South America
Finland: Europe
Nepal: Asia
Morocco: Africa
Colombia: South America
Austria: Europe
Vietnam: Asia
Madagascar: Africa
"""

# painting: painter | aliases
PAINTERS = """
The Starry Night: Vincent van Gogh | Van Gogh | Vincent Van Gogh
The Last Supper: Leonardo da Vinci | da Vinci | Leonardo
Guernica: Pablo Picasso | Picasso
The Persistence of Memory: Salvador Dali | Salvador Dalí | Dali
The Scream: Edvard Munch | Munch
Girl with a Pearl Earring: Johannes Vermeer | Vermeer | Jan Vermeer
The Birth of Venus: Sandro Botticelli | Botticelli
The Night Watch: Rembrandt | Rembrandt van Rijn
Water Lilies: Claude Monet | Monet
The Kiss: Gustav Klimt | Klimt
American Gothic: Grant Wood
The Creation of Adam: Michelangelo | Michelangelo Buonarroti
Impression, Sunrise: Claude Monet | Monet
The Garden of Earthly Delights: Hieronymus Bosch | Bosch
Las Meninas: Diego Velazquez | Diego Velázquez | Velazquez
The Great Wave off Kanagawa: Katsushika Hokusai | Hokusai
Sunflowers: Vincent van Gogh | Van Gogh | Vincent Van Gogh
The School of Athens: Raphael | Raffaello Sanzio
Les Demoiselles d'Avignon: Pablo Picasso | Picasso
Liberty Leading the People: Eugene Delacroix | Eugène Delacroix | Delacroix
"""

# category: (facts, question template; {key} is the left-hand side, None when the left-hand side is the question)
CATEGORIES = {
    "capital": (CAPITALS, "What is the capital of {key}?"),
    "chemical_symbol": (SYMBOLS, "What is the chemical symbol for {key}?"),
    "author": (AUTHORS, "Who wrote {key}?"),
    "currency": (CURRENCIES, "What is the currency of {key}?"),
    "planet": (PLANETS, None),
    "continent": (CONTINENTS, "On which continent is {key}?"),
    "painter": (PAINTERS, "Who painted {key}?"),
}


def parse_facts(text: str) -> list[tuple[str, list[str]]]:
    """(key, aliases) per "key: answer | alias | ..." line; the key is split at its last ": "."""
    facts = []
    for line in text.strip().splitlines():
        key, _, answers = line.rpartition(": ")
        facts.append((key.strip(), [a.strip() for a in answers.split("|")]))
    return facts


def all_questions() -> list[dict]:
    """Every question of the set in a fixed order: question, answers (aliases), category."""
    rows = []
    for category, (text, template) in CATEGORIES.items():
        for key, answers in parse_facts(text):
            question = key if template is None else template.format(key=key)
            rows.append({"question": question, "answers": answers, "category": category})
    return rows


def generate(n_validation: int = 150, n_test: int = 150, seed: int = 0) -> DatasetDict:
    """Train / validation / test splits of the factual questions; validation and test take ``n_validation`` and
    ``n_test`` questions spread over the categories in proportion, train keeps the rest."""
    rows = all_questions()
    n_validation, n_test = check_count("n_validation", n_validation, 0), check_count("n_test", n_test, 0)
    if n_validation + n_test > len(rows):
        raise ValueError(
            f"n_validation + n_test = {n_validation + n_test} exceeds the {len(rows)} questions of the set"
        )
    rng = np.random.default_rng(check_count("seed", seed, minimum=0))
    # interleave the categories in a seeded order so that any prefix mixes them in proportion
    categories = np.array([r["category"] for r in rows])
    rank = np.empty(len(rows))
    for category in CATEGORIES:
        members = rng.permutation(np.flatnonzero(categories == category))
        rank[members] = (np.arange(len(members)) + rng.random()) / len(members)
    order = np.argsort(rank, kind="stable")
    cuts = {"validation": order[:n_validation], "test": order[n_validation : n_validation + n_test]}
    cuts["train"] = order[n_validation + n_test :]
    features = Features(
        {"question": Value("string"), "answers": Sequence(Value("string")), "category": Value("string")}
    )
    return DatasetDict(
        {split: Dataset.from_list([rows[i] for i in sorted(cuts[split])], features=features) for split in SPLITS}
    )
