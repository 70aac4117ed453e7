"""Generate the synthetic citizens of the embedded registries, reproducibly.

    python -m jmo_registries.generate            # (re)write data/citizens.jsonl.gz
    python -m jmo_registries.generate --check    # exit 1 if the committed file drifted

Everything is drawn from one seeded ``random.Random``; no clock, no environment. The output is
byte-identical on every run (gzip with mtime 0 and no file name). Names are random combinations of
common Indonesian given and family names: no real person's data. Six citizens carry a KTP photo
taken from the public ``face_recognition`` test images; their synthetic names are not the names of
the people pictured.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import sys
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .nik import PROVINCES, birth_segment

SEED = 20250630
COUNT = 12_000
EMPLOYER_SHARE = 0.30
INACTIVE_SHARE = 0.04
EMPLOYERS = 400
#: The data set is "as of" this date (member_since never later); never the clock.
AS_OF = date(2025, 6, 30)
BIRTH_FROM, BIRTH_TO = date(1950, 1, 1), date(2007, 12, 31)
PROGRAMS = ["JKK", "JKM", "JHT", "JP"]

DATA_DIR = Path(__file__).parent / "data"
OUTPUT = DATA_DIR / "citizens.jsonl.gz"
MANIFEST = DATA_DIR / "citizens.manifest.json"

#: photo file (in data/ktp_photos) → gender of the person pictured, and whether the synthetic
#: citizen it is given to is employer-registered (so PU and BPU/PMI journeys both have faces).
PHOTOS: list[tuple[str, str, bool]] = [
    ("obama.jpg", "M", True),
    ("biden.jpg", "M", False),
    ("alex-lacamoire.png", "M", True),
    ("kit_harington1.jpeg", "M", False),
    ("rose_leslie1.jpg", "F", True),
    ("lin-manuel-miranda.png", "M", False),
]
#: Name parts of the people pictured: a synthetic name must contain none of them.
PICTURED_NAMES = {"BARACK", "OBAMA", "JOE", "JOSEPH", "BIDEN", "ALEX", "LACAMOIRE", "KIT", "HARINGTON",
                  "ROSE", "LESLIE", "LIN", "MANUEL", "MIRANDA"}

# Relative population weights (roughly proportional to the 2020 census).
PROVINCE_WEIGHTS = {
    "11": 53, "12": 148, "13": 55, "14": 64, "15": 36, "16": 86, "17": 20, "18": 90, "19": 15,
    "21": 21, "31": 106, "32": 487, "33": 365, "34": 37, "35": 407, "36": 119, "51": 43, "52": 53,
    "53": 53, "61": 54, "62": 27, "63": 41, "64": 38, "65": 7, "71": 26, "72": 30, "73": 91, "74": 26,
    "75": 12, "76": 14, "81": 18, "82": 13, "91": 34, "92": 11,
}

OTHER_CITIES = {
    "11": ["Lhokseumawe", "Langsa", "Sabang"], "12": ["Pematangsiantar", "Binjai", "Tebing Tinggi", "Sibolga"],
    "13": ["Bukittinggi", "Payakumbuh", "Solok"], "14": ["Dumai", "Bengkalis"], "15": ["Sungai Penuh", "Muara Bungo"],
    "16": ["Lubuklinggau", "Prabumulih", "Lahat"], "17": ["Curup", "Manna"], "18": ["Metro", "Kotabumi"],
    "19": ["Tanjung Pandan", "Sungailiat"], "21": ["Batam", "Tanjung Balai Karimun"],
    "31": ["Jakarta Selatan", "Jakarta Timur", "Jakarta Barat", "Jakarta Utara"],
    "32": ["Bogor", "Bekasi", "Depok", "Cirebon", "Tasikmalaya", "Sukabumi", "Garut", "Karawang"],
    "33": ["Surakarta", "Magelang", "Pekalongan", "Tegal", "Kudus", "Purwokerto", "Klaten"],
    "34": ["Sleman", "Bantul", "Wonosari"], "35": ["Malang", "Kediri", "Madiun", "Jember", "Banyuwangi", "Sidoarjo", "Blitar"],
    "36": ["Tangerang", "Cilegon", "Pandeglang"], "51": ["Singaraja", "Gianyar", "Tabanan"], "52": ["Bima", "Sumbawa Besar"],
    "53": ["Ende", "Maumere", "Atambua"], "61": ["Singkawang", "Ketapang"], "62": ["Sampit", "Pangkalan Bun"],
    "63": ["Banjarbaru", "Martapura"], "64": ["Balikpapan", "Bontang"], "65": ["Tarakan", "Nunukan"],
    "71": ["Bitung", "Tomohon", "Kotamobagu"], "72": ["Luwuk", "Poso"], "73": ["Parepare", "Palopo", "Bone"],
    "74": ["Baubau", "Kolaka"], "75": ["Limboto"], "76": ["Majene", "Polewali"], "81": ["Tual", "Masohi"],
    "82": ["Ternate", "Tidore"], "91": ["Merauke", "Biak", "Timika"], "92": ["Sorong", "Fakfak"],
}

MALE_GIVEN = [
    "Agus", "Budi", "Joko", "Ahmad", "Muhammad", "Rudi", "Hendra", "Dedi", "Eko", "Bambang", "Wahyu",
    "Arif", "Fajar", "Rizki", "Andi", "Yusuf", "Hadi", "Slamet", "Heru", "Dwi", "Teguh", "Iwan", "Bayu",
    "Dimas", "Galih", "Rahmat", "Irfan", "Fikri", "Hasan", "Imam", "Ridwan", "Taufik", "Zainal", "Ilham",
    "Yohanes", "Stefanus", "Petrus", "Markus", "Daniel", "Samuel", "Putu", "Made", "Komang", "Ketut",
    "Wayan", "Nyoman", "Ma'ruf", "Syafi'i", "Aditya", "Reza", "Gilang", "Yoga", "Rangga", "Doni",
    "Anton", "Ujang", "Asep", "Dadang", "Ucok", "Lukas", "Fransiskus", "Krisna", "Bagus", "Satria",
]
FEMALE_GIVEN = [
    "Siti", "Sri", "Dewi", "Ratna", "Wati", "Ani", "Yuni", "Rina", "Ayu", "Putri", "Fitri", "Indah",
    "Nur", "Nurul", "Dian", "Maya", "Rini", "Endang", "Sulastri", "Suryani", "Kartika", "Anisa",
    "Nabila", "Aisyah", "Fatimah", "Rahma", "Intan", "Mega", "Novi", "Tuti", "Yanti", "Lina", "Eka",
    "Kadek", "Ni Luh", "Ni Made", "Maria", "Theresia", "Agustina", "Margaretha", "Yohana", "Veronika",
    "Rosalina", "Nur'aini", "Ma'rifah", "Cut", "Nining", "Euis", "Neneng", "Tiara", "Salsabila", "Citra",
]
MALE_MIDDLE = ["Eko", "Dwi", "Tri", "Adi", "Nur", "Budi", "Abdul", "Muh.", "M.", "Rizal", "Hari", "Aji"]
FEMALE_MIDDLE = ["Dwi", "Tri", "Nur", "Ayu", "Sri", "Puspita", "Dewi", "Indah", "Kurnia", "Ratna"]
MALE_FAMILY = [
    "Santoso", "Susanto", "Kurniawan", "Setiawan", "Gunawan", "Hidayat", "Nugroho", "Prasetyo", "Saputra",
    "Pratama", "Wibowo", "Firmansyah", "Ramadhan", "Hakim", "Sutrisno", "Hartono", "Purnomo", "Wijaya",
    "Hermawan", "Suryadi", "Syahputra", "Maulana", "Al-Farisi", "Siregar", "Nasution", "Lubis", "Harahap",
    "Simanjuntak", "Sinaga", "Tambunan", "Situmorang", "Hutapea", "Manurung", "Ginting", "Tarigan",
    "Sembiring", "Pardede", "Panjaitan", "Sihombing", "Wattimena", "Pattiasina", "Latuconsina", "Rumbiak",
    "Mandagi", "Wenas", "Sondakh", "Pangemanan", "Rondonuwu", "Daeng", "Mappa", "Tanjung", "Chaniago",
]
FEMALE_FAMILY = [
    "Lestari", "Wulandari", "Rahayu", "Sari", "Handayani", "Permatasari", "Puspitasari", "Kusumawati",
    "Safitri", "Anggraini", "Utami", "Pertiwi", "Maharani", "Susanti", "Fitriani", "Rahmawati",
    "Siregar", "Nasution", "Lubis", "Harahap", "Simanjuntak", "Sinaga", "Ginting", "Tarigan", "Sembiring",
    "Wattimena", "Mandagi", "Wenas", "Sondakh", "Br. Sitepu", "Boru Tobing", "Al-Habsyi", "Chaniago",
]
#: Single names (common in Java): no clan names, which are never used alone.
MALE_SINGLE = ["Sutrisno", "Hartono", "Purnomo", "Suryadi", "Santoso", "Susanto", "Kurniawan", "Setiawan",
               "Gunawan", "Nugroho", "Prasetyo", "Wibowo", "Slamet", "Bambang", "Joko", "Heru", "Teguh",
               "Suparman", "Sugiarto", "Mulyadi", "Supriyanto", "Darmawan"]
FEMALE_SINGLE = ["Sulastri", "Suryani", "Lestari", "Wulandari", "Rahayu", "Puspitasari", "Handayani",
                 "Susanti", "Kusumawati", "Endang", "Sumiati", "Sriyani", "Wahyuni", "Suwarni", "Murniati"]
STREETS = [
    "Merdeka", "Sudirman", "Diponegoro", "Gatot Subroto", "Ahmad Yani", "Pahlawan", "Imam Bonjol",
    "Kartini", "Gajah Mada", "Hayam Wuruk", "Veteran", "Pemuda", "Cendrawasih", "Melati", "Mawar",
    "Anggrek", "Kenanga", "Flamboyan", "Cempaka", "Teuku Umar", "Hasanuddin", "Pattimura", "Sisingamangaraja",
    "Raya Pasar", "Masjid", "Kebon Jeruk", "Sawah Besar", "Padi", "Nangka", "Rambutan",
]
VILLAGE_PREFIX = ["Sukamaju", "Sukajadi", "Mekarsari", "Sidomulyo", "Tanjung", "Karang", "Sumber", "Kebon",
                  "Cempaka", "Margahayu", "Tegal", "Pasir", "Sungai", "Bukit", "Kampung Baru"]
VILLAGE_SUFFIX = ["", " Jaya", " Indah", " Baru", " Timur", " Barat", " Utara", " Selatan", " Asri"]
RELIGIONS = [("ISLAM", 870), ("KRISTEN", 70), ("KATOLIK", 30), ("HINDU", 17), ("BUDDHA", 7),
             ("KONGHUCU", 1), ("KEPERCAYAAN TERHADAP TUHAN YME", 1)]
COMPANY_WORDS_A = ["Sinar", "Maju", "Karya", "Cipta", "Bumi", "Mitra", "Surya", "Cahaya", "Samudra", "Graha",
                   "Putra", "Tunas", "Mega", "Bintang", "Nusa", "Tirta", "Duta", "Panca", "Sentra", "Wahana"]
COMPANY_WORDS_B = ["Jaya", "Abadi", "Sentosa", "Makmur", "Mandiri", "Nusantara", "Sejahtera", "Utama", "Prima",
                   "Gemilang", "Perkasa", "Lestari", "Bersama", "Persada", "Buana", "Raya", "Santosa", "Agung"]
COMPANY_WORDS_C = ["", "", "", " Logistik", " Tekstil", " Pangan", " Niaga", " Konstruksi", " Teknik",
                   " Elektrindo", " Plastindo", " Farma", " Transportasi", " Agro", " Digital", " Motor"]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def _name(rng: random.Random, gender: str) -> str:
    given, middle, family, single = (MALE_GIVEN, MALE_MIDDLE, MALE_FAMILY, MALE_SINGLE) if gender == "M" else (
        FEMALE_GIVEN, FEMALE_MIDDLE, FEMALE_FAMILY, FEMALE_SINGLE)
    shape = rng.random()
    if shape < 0.15:  # a single name, common in Java
        parts = [rng.choice(single)]
    elif shape < 0.65:
        parts = [rng.choice(given), rng.choice(family)]
    else:
        parts = [rng.choice(given), rng.choice(middle), rng.choice(family)]
    for i in range(1, len(parts)):  # no "Nur Nur"
        if parts[i] == parts[i - 1]:
            parts[i] = rng.choice(family)
    return " ".join(parts).upper()


def _address(rng: random.Random, city: str) -> str:
    village = rng.choice(VILLAGE_PREFIX) + rng.choice(VILLAGE_SUFFIX)
    return (f"JL. {rng.choice(STREETS).upper()} NO. {rng.randint(1, 250)}, RT {rng.randint(1, 15):03d}/"
            f"RW {rng.randint(1, 12):03d}, {village.upper()}, {city.upper()}")


def _marital(rng: random.Random, age: int) -> str:
    if age < 22:
        return "BELUM KAWIN" if rng.random() < 0.9 else "KAWIN"
    r = rng.random()
    if r < 0.72:
        return "KAWIN"
    if r < 0.72 + max(0.03, 0.30 - age * 0.004):
        return "BELUM KAWIN"
    return "CERAI MATI" if age > 50 and rng.random() < 0.6 else "CERAI HIDUP"


def _employers(rng: random.Random) -> list[tuple[str, str]]:
    names: set[str] = set()
    npps: set[str] = set()
    out: list[tuple[str, str]] = []
    while len(out) < EMPLOYERS:
        name = f"PT {rng.choice(COMPANY_WORDS_A)} {rng.choice(COMPANY_WORDS_B)}{rng.choice(COMPANY_WORDS_C)}"
        npp = f"{rng.randint(10_000_000, 99_999_999)}"
        if name in names or npp in npps:
            continue
        names.add(name)
        npps.add(npp)
        out.append((npp, name.upper()))
    return out


def _age(born: date) -> int:
    return AS_OF.year - born.year - ((AS_OF.month, AS_OF.day) < (born.month, born.day))


def generate_records(seed: int = SEED, count: int = COUNT) -> list[dict[str, Any]]:
    """The synthetic citizens, in data-set order (a pure function of ``seed`` and ``count``)."""
    rng = random.Random(seed)
    employers = _employers(rng)
    employer_weights = [rng.paretovariate(1.2) for _ in employers]  # a few large employers
    provinces = list(PROVINCE_WEIGHTS)
    weights = list(PROVINCE_WEIGHTS.values())
    niks: set[str] = set()
    kpjs: set[str] = set()
    records: list[dict[str, Any]] = []
    while len(records) < count:
        gender = "M" if rng.random() < 0.5 else "F"
        born = _random_date(rng, BIRTH_FROM, BIRTH_TO)
        province = rng.choices(provinces, weights=weights)[0]
        regency = rng.randint(1, 25) if rng.random() < 0.75 else rng.randint(71, 79)
        region = f"{province}{regency:02d}{rng.randint(1, 35):02d}"
        prefix = region + birth_segment(born, gender)
        serial = rng.randint(1, 9999)
        while f"{prefix}{serial:04d}" in niks:  # same region, day and serial: take the next serial
            serial = serial % 9999 + 1
        nik = f"{prefix}{serial:04d}"
        niks.add(nik)
        capital = PROVINCES[province][1]
        home_cities = [capital, *OTHER_CITIES[province]]
        if rng.random() < 0.8:
            birth_place = rng.choice(home_cities)
        else:
            other = rng.choice(provinces)
            birth_place = rng.choice([PROVINCES[other][1], *OTHER_CITIES[other]])
        age = _age(born)
        record: dict[str, Any] = {
            "nik": nik,
            "full_name": _name(rng, gender),
            "birth_place": birth_place.upper(),
            "birth_date": born.isoformat(),
            "gender": gender,
            "mother_maiden_name": _name(rng, "F"),
            "address": _address(rng, rng.choice(home_cities)),
            "religion": _weighted(rng, RELIGIONS),
            "marital_status": _marital(rng, age),
        }
        if age >= 18 and rng.random() < EMPLOYER_SHARE:
            npp, employer_name = rng.choices(employers, weights=employer_weights)[0]
            kpj = f"{rng.randint(10_000_000_000, 99_999_999_999)}"
            while kpj in kpjs:
                kpj = f"{rng.randint(10_000_000_000, 99_999_999_999)}"
            kpjs.add(kpj)
            earliest = max(date(born.year + 18, born.month, 1), date(2000, 1, 1))
            record["employer"] = {
                "kpj_number": kpj,
                "employer_npp": npp,
                "employer_name": employer_name,
                "member_since": _random_date(rng, earliest, AS_OF).isoformat(),
                "programs": list(PROGRAMS),
                "status": "INACTIVE" if rng.random() < INACTIVE_SHARE else "ACTIVE",
            }
        records.append(record)
    _assign_photos(rng, records)
    return records


def _assign_photos(rng: random.Random, records: list[dict[str, Any]]) -> None:
    taken: set[int] = set()
    for photo, gender, registered in PHOTOS:
        candidates = [
            i for i, r in enumerate(records)
            if i not in taken and r["gender"] == gender
            and ((r.get("employer") or {}).get("status") == "ACTIVE") == registered
            and 25 <= _age(date.fromisoformat(r["birth_date"])) <= 60
            and not PICTURED_NAMES & set(r["full_name"].split())
        ]
        chosen = rng.choice(candidates)
        taken.add(chosen)
        records[chosen]["photo"] = photo


def render_jsonl(records: list[dict[str, Any]]) -> bytes:
    """One compact JSON object per line, UTF-8, keys in a fixed order."""
    return b"".join(
        json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records
    )


def compress(data: bytes) -> bytes:
    """Deterministic gzip: level 9, mtime 0, no file name."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def manifest(records: list[dict[str, Any]], jsonl: bytes, compressed: bytes) -> dict[str, Any]:
    """Figures of the data set, recorded next to it (the zlib version explains byte drift)."""
    return {
        "seed": SEED,
        "count": len(records),
        "jsonl_sha256": hashlib.sha256(jsonl).hexdigest(),
        "gzip_sha256": hashlib.sha256(compressed).hexdigest(),
        "gzip_bytes": len(compressed),
        "zlib_version": zlib.ZLIB_RUNTIME_VERSION,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    args = parser.parse_args(argv)
    records = generate_records()
    jsonl = render_jsonl(records)
    compressed = compress(jsonl)
    if args.check:
        current = OUTPUT.read_bytes() if OUTPUT.exists() else b""
        same = gzip.decompress(current) == jsonl if current else False
        print("up to date" if same else "DRIFT: run python -m jmo_registries.generate")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(compressed)
    MANIFEST.write_text(json.dumps(manifest(records, jsonl, compressed), indent=2) + "\n")
    print(f"wrote {len(records)} citizens to {OUTPUT} ({len(compressed)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
