"""Attribute vocabularies of the fictitious world.

Values are single words or two words without punctuation, so that an answer is a short,
unambiguous string that exact match can check. Lists are fixed (not sampled from a library)
so that a seed names the same world on every machine and version.
"""

FIRST_NAMES = (
    "Adela Bram Corin Dalia Edric Farah Galen Hesper Ilka Joren Katya Lorcan Mirela Niall "
    "Odile Perrin Quilla Rowan Sabine Tobin Ulla Viggo Wren Xenia Yorick Zelda Anselm Brisa "
    "Cassian Delphine Emrys Fenna Gideon Halina Ivo Jessamy Kestrel Liesel Mattias Noor "
    "Osric Petra Raffi Solveig Thaddeus Una Vesna Wendel Yara Zoltan"
).split()

LAST_NAMES = (
    "Okafor Lindqvist Marchetti Haldane Voskuijlen Tamura Brennick Azevedo Kowalczyk Ferrand "
    "Oyelaran Castellan Drummond Esterhazy Falkner Grimaldi Holloway Ibarra Jurgens Kavanagh "
    "Lacroix Moravec Nakashima Ostrowski Pellegrin Quintero Rasmussen Szabo Thornbury Uriarte "
    "Valdivia Whitlock Yilmaz Zamora Achterberg Belmonte Coriander Dunmore Everly Fairweather"
).split()

CITIES = (
    "Lisbon Tallinn Osaka Valparaiso Krakow Accra Bergen Tbilisi Montreal Lyon Porto Hanoi "
    "Nairobi Seville Trieste Dublin Quito Tampere Adelaide Kyoto Cordoba Ghent Bilbao Zagreb "
    "Izmir Leipzig Halifax Mombasa Aarhus Cusco"
).split()

COUNTRIES = (
    "Portugal Estonia Japan Chile Poland Ghana Norway Georgia Canada France Vietnam Kenya "
    "Spain Italy Ireland Ecuador Finland Australia Croatia Turkey Germany Denmark Peru Belgium"
).split()

PROFESSIONS = (
    "architect cartographer violinist geologist pharmacist translator astronomer sculptor "
    "veterinarian glassblower economist librarian choreographer engineer botanist journalist "
    "luthier meteorologist surgeon typographer"
).split()

INDUSTRIES = (
    "shipbuilding textiles robotics brewing publishing aviation pharmaceuticals ceramics "
    "logistics software mining cosmetics fisheries insurance"
).split()

PRODUCTS = (
    "telescopes bicycles lanterns harmonicas umbrellas typewriters compasses kayaks "
    "barometers teapots skates microscopes chronometers accordions hammocks"
).split()

RIVERS = (
    "Varna Oskel Drava Meline Tessin Lomar Ardel Kaskin Elbrun Sorra Vintel Marrow Ysel Pelora"
).split()

CRAFTS = (
    "glassmaking lacework cheesemaking clockmaking weaving pottery woodcarving saltworks "
    "papermaking tanning bellfounding shipwrighting"
).split()

COMPANY_STEMS = (
    "Velmora Quorin Astelle Brightwater Corvane Dunhollow Emberline Fjordway Galloran "
    "Harrowgate Isenfield Juniper Kestrava Lumenor Marisco Northvale Orrin Pellucid Quillon "
    "Ravensmoor Silverbrook Tarrant Umberfield Vantor Wexmoor Yarrowby Zephyra Ashcombe"
).split()

COMPANY_SUFFIXES = "Works Systems Holdings Industries Group Labs Trading Foundry".split()

PLACE_STEMS = (
    "Ambervale Brisken Caldermoor Dunmere Eskwater Fallowmere Glenhaven Hollowick Irondale "
    "Kingsreach Larkspur Mistlebury Nettlecombe Oakhurst Pennywhistle Quarrington Rookhaven "
    "Saltmarsh Thistledown Underhill Wyndham Yewbridge Ashgrove Blackwater Coldharbour Deepdene"
).split()

YEARS_PERSON = tuple(str(y) for y in range(1931, 1996))
YEARS_FOUNDED = tuple(str(y) for y in range(1820, 1991))
