"""Which Select Sector SPDR ETF stands for a stock's sector, for the market regime at entry.

The table follows the GICS sectors (as reclassified in March 2023: card networks and payment
processors are Financials; Alphabet, Meta and Netflix are Communication Services; Amazon and
Tesla are Consumer Discretionary; Uber is Industrials). A ticker not listed is recorded as unknown, never guessed:
a wrong sector would teach the data set a false correlation. Broad-market funds (SPY, QQQ, IWM)
have no sector and are deliberately absent. Extend the table as the scanner trades new names.
"""

from __future__ import annotations

SECTOR_ETFS = {
    "XLB": "Materials",
    "XLC": "Communication Services",
    "XLE": "Energy",
    "XLF": "Financials",
    "XLI": "Industrials",
    "XLK": "Information Technology",
    "XLP": "Consumer Staples",
    "XLRE": "Real Estate",
    "XLU": "Utilities",
    "XLV": "Health Care",
    "XLY": "Consumer Discretionary",
}

_MEMBERS = {
    "XLK": "AAPL MSFT NVDA AVGO ORCL CRM AMD ADBE CSCO ACN IBM INTC QCOM TXN INTU NOW AMAT MU LRCX ADI KLAC "
           "PANW SNPS CDNS CRWD ANET MRVL FTNT SMCI DELL HPQ HPE PLTR MCHP ON NXPI WDAY TEAM SNOW DDOG NET",
    "XLC": "GOOGL GOOG META NFLX DIS CMCSA T VZ TMUS CHTR EA TTWO WBD PARA SNAP PINS RDDT SPOT ROKU",
    "XLY": "AMZN TSLA HD MCD NKE LOW SBUX BKNG TJX CMG ABNB MAR GM F ROST ORLY AZO LULU DHI LEN RCL CCL "
           "EBAY ETSY DASH RIVN LCID W CVNA",
    "XLF": "JPM BAC WFC C GS MS SCHW BLK AXP V MA PYPL COF USB PNC TFC BK SPGI MCO CME ICE CB PGR MET "
           "AIG HOOD COIN SOFI AFRM BRKB",
    "XLV": "UNH JNJ LLY ABBV MRK PFE TMO ABT DHR BMY AMGN GILD CVS CI ELV ISRG MDT SYK VRTX REGN MRNA "
           "BIIB ZTS HCA HUM",
    "XLE": "XOM CVX COP EOG SLB OXY PSX MPC VLO HAL DVN KMI WMB OKE HES FANG BKR",
    "XLI": "GE CAT HON UPS UNP BA RTX LMT DE MMM GD NOC FDX CSX NSC EMR ETN ITW WM DAL UAL AAL LUV UBER",
    "XLP": "PG KO PEP COST WMT PM MO MDLZ CL KMB GIS KHC STZ KR TGT DG DLTR SYY HSY",
    "XLU": "NEE DUK SO D AEP EXC SRE XEL PCG ED PEG",
    "XLRE": "PLD AMT EQIX CCI PSA SPG O WELL DLR VICI",
    "XLB": "LIN APD SHW ECL FCX NEM NUE DOW DD CTVA ALB MOS",
}

SECTOR_ETF_OF: dict[str, str] = {
    **{ticker: etf for etf, members in _MEMBERS.items() for ticker in members.split()},
    **{etf: etf for etf in SECTOR_ETFS},  # a sector fund is its own sector
}


def sector_etf(ticker: str) -> str | None:
    """The sector ETF for `ticker`, or None when the table does not know it."""
    return SECTOR_ETF_OF.get(ticker.upper())
