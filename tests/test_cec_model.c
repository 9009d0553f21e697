/*
 * tests/test_cec_model.c: T/CEC 102 parts 2 and 3 objects (plugins/cec/cec_model.h):
 * mapping of core rows to CEC JSON, exact decimals, paging, request validation with
 * 4004 messages naming the field, profile spellings, push bodies and push replies.
 */
#include "cec_model.h"
#include "testutil.h"

#include <string.h>

#define OPID "123456789"
#define SEQ27 "123456789201805081628123456"

static cec_profile_t prof(void)
{
	cec_profile_t p;
	evcs_cec_profile_default(&p);
	return p;
}

/* Serialise with evcs_cec_dumps and take ownership of j. */
static char *dump(json_t *j)
{
	CU_ASSERT_PTR_NOT_NULL(j);
	if (!j)
		return strdup("");
	char *s = evcs_cec_dumps(j);
	json_decref(j);
	return s;
}

static json_t *parse(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL(j);
	return j;
}

#define ASSERT_HAS(s, frag)                                                              \
	do {                                                                             \
		if (!strstr((s), (frag)))                                                \
			fprintf(stderr, "\nmissing %s in %s\n", (frag), (s));            \
		CU_ASSERT_PTR_NOT_NULL(strstr((s), (frag)));                             \
	} while (0)
#define ASSERT_LACKS(s, frag) CU_ASSERT_PTR_NULL(strstr((s), (frag)))

/* ------------------------------------------------------------- fixture */

static const cec_live_t LIVE3 = {{1605, 1598, 1610}, {2201, 2199, 2203}, 3, 57};
static cec_gun_t guns[] = {
	{.connector_id = "3201060001923601", .name = "1号枪", .connector_type = 4, .voltage_upper_v = 750,
	 .voltage_lower_v = 200, .current_a = 250, .power_w = 60000, .park_no = "A-01", .national_standard = 2,
	 .state = CEC_GUN_CHARGING, .plugged = true, .live = &LIVE3},
	{.connector_id = "3201060001923602", .connector_type = 4, .voltage_upper_v = 750, .voltage_lower_v = 200,
	 .current_a = 250, .power_w = 60000, .state = CEC_GUN_IDLE, .plugged = true, .park_status = 50,
	 .lock_status = 10},
	{.connector_id = "3201060001923701", .connector_type = 3, .voltage_upper_v = 220, .voltage_lower_v = 220,
	 .current_a = 32, .power_w = 7040, .state = CEC_GUN_OFFLINE},
};
static const cec_pile_t piles[] = {
	{.equipment_id = "32010600019236", .manufacturer_id = "MA1G55M8X", .manufacturer_name = "Acme",
	 .model = "DC120", .production_date = 1577808000 /* 2020-01-01 00:00 +8 */, .equipment_type = 1,
	 .power_w = 120000, .has_gps = true, .lng_e6 = 121473701, .lat_e6 = 31230416, .guns = guns, .n_guns = 2},
	{.equipment_id = "32010600019237", .equipment_type = 2, .power_w = 7040, .guns = guns + 2, .n_guns = 1},
};
static const char *const pics[] = {"https://x.example/1.jpg"};
static const cec_station_t station = {
	.tenant_id = 3, .station_id = "S0001", .operator_id = OPID, .name = "浦东充电站",
	.area_code = "310115", .address = "上海市浦东新区世纪大道1号", .service_tel = "4001234567",
	.station_type = 1, .station_status = 50, .park_nums = 2, .lng_e6 = 121473701, .lat_e6 = 31230416,
	.construction = 255, .pictures = pics, .n_pictures = 1, .busine_hours = "00:00-24:00",
	.piles = piles, .n_piles = 2};

/* --------------------------------------------------------- enumerations */

static void test_iface_names(void)
{
	for (int i = 0; i < CEC_IF__COUNT; i++)
		CU_ASSERT_EQUAL(evcs_cec_iface_from_name(evcs_cec_iface_name((cec_iface_t)i)), i);
	CU_ASSERT_STRING_EQUAL(evcs_cec_iface_name(CEC_IF_NOTIFY_STATION_STATUS), "notification_stationStatus");
	CU_ASSERT_STRING_EQUAL(evcs_cec_iface_name(CEC_IF_CHECK_CHARGE_ORDERS), "check_charge_orders");
	CU_ASSERT_EQUAL(evcs_cec_iface_from_name("query_Token"), -1);
	CU_ASSERT_PTR_NULL(evcs_cec_iface_name(CEC_IF__COUNT));
}

static void test_status_mapping(void)
{
	/* core state, plugged, reserved -> ConnectorStatusInfo.Status, charge ConnectorStatus */
	static const struct {
		int state;
		bool plugged, reserved;
		int status, charge;
	} v[] = {
		{CEC_GUN_OFFLINE, false, false, 0, 255}, {CEC_GUN_OFFLINE, true, false, 0, 255},
		{CEC_GUN_FAULT, false, false, 255, 255}, {CEC_GUN_FAULT, true, true, 255, 255},
		{CEC_GUN_IDLE, false, false, 1, 1},      {CEC_GUN_IDLE, true, false, 2, 2},
		{CEC_GUN_IDLE, false, true, 4, 4},       {CEC_GUN_IDLE, true, true, 2, 2},
		{CEC_GUN_CHARGING, true, false, 3, 3},   {CEC_GUN_CHARGING, false, false, 3, 3},
		{9, false, false, 255, 255},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		CU_ASSERT_EQUAL(evcs_cec_connector_status((cec_gun_state_t)v[i].state, v[i].plugged, v[i].reserved),
				v[i].status);
		CU_ASSERT_EQUAL(evcs_cec_charge_connector_status((cec_gun_state_t)v[i].state, v[i].plugged,
								 v[i].reserved),
				v[i].charge);
	}
}

/* --------------------------------------------------------- StationInfo */

static void test_station_info_golden(void)
{
	cec_profile_t p = prof();
	char *s = dump(evcs_cec_station_info(&p, &station, NULL));
	CU_ASSERT_STRING_EQUAL(
		s,
		"{\"StationID\":\"S0001\",\"OperatorID\":\"123456789\",\"EquipmentOwnerID\":\"123456789\","
		"\"StationName\":\"浦东充电站\",\"CountryCode\":\"CN\",\"AreaCode\":\"310115\","
		"\"Address\":\"上海市浦东新区世纪大道1号\",\"ServiceTel\":\"4001234567\",\"StationType\":1,"
		"\"StationStatus\":50,\"ParkNums\":2,\"StationLng\":121.473701,\"StationLat\":31.230416,"
		"\"Construction\":255,\"Pictures\":[\"https://x.example/1.jpg\"],\"BusineHours\":\"00:00-24:00\","
		"\"EquipmentInfos\":[{\"EquipmentID\":\"32010600019236\",\"ManufacturerID\":\"MA1G55M8X\","
		"\"ManufacturerName\":\"Acme\",\"EquipmentModel\":\"DC120\",\"ProductionDate\":\"2020-01-01\","
		"\"EquipmentType\":1,\"ConnectorInfos\":[{\"ConnectorID\":\"3201060001923601\",\"ConnectorName\":"
		"\"1号枪\",\"ConnectorType\":4,\"VoltageUpperLimits\":750,\"VoltageLowerLimits\":200,\"Current\":250,"
		"\"Power\":60.0,\"ParkNo\":\"A-01\",\"NationalStandard\":2},{\"ConnectorID\":\"3201060001923602\","
		"\"ConnectorType\":4,\"VoltageUpperLimits\":750,\"VoltageLowerLimits\":200,\"Current\":250,"
		"\"Power\":60.0}],\"EquipmentLng\":121.473701,\"EquipmentLat\":31.230416,\"Power\":120.0},"
		"{\"EquipmentID\":\"32010600019237\",\"EquipmentType\":2,\"ConnectorInfos\":[{\"ConnectorID\":"
		"\"3201060001923701\",\"ConnectorType\":3,\"VoltageUpperLimits\":220,\"VoltageLowerLimits\":220,"
		"\"Current\":32,\"Power\":7.0}],\"Power\":7.0}]}");
	free(s);
}

static void test_station_info_limits_and_utf8(void)
{
	cec_profile_t p = prof();
	cec_station_t st = station;
	/* 60 Chinese characters: StationName is S(50), cut at a character boundary. */
	char name[60 * 3 + 1] = "";
	for (int i = 0; i < 60; i++)
		strcat(name, "站");
	st.name = name;
	char *s = dump(evcs_cec_station_info(&p, &st, NULL));
	json_t *j = parse(s);
	const char *got = json_string_value(json_object_get(j, "StationName"));
	CU_ASSERT_EQUAL(strlen(got), 50u * 3);
	json_decref(j);
	free(s);
	/* Invalid UTF-8 fails the object and names the field. */
	st.name = "bad\xff";
	cec_status_t err = {0};
	CU_ASSERT_PTR_NULL(evcs_cec_station_info(&p, &st, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "StationName"));
}

static void test_station_info_extra(void)
{
	cec_profile_t p = prof();
	cec_station_t st = station;
	json_t *extra = json_pack("{s:i, s:s, s:i}", "ParkFeeFree", 2, "StationID", "HIJACK", "BusineHours724", 1);
	st.extra = extra;
	char *s = dump(evcs_cec_station_info(&p, &st, NULL));
	ASSERT_LACKS(s, "ParkFeeFree");
	free(s);
	p.station_extra = true;
	s = dump(evcs_cec_station_info(&p, &st, NULL));
	ASSERT_HAS(s, "\"ParkFeeFree\":2");
	ASSERT_HAS(s, "\"BusineHours724\":1");
	ASSERT_HAS(s, "\"StationID\":\"S0001\"");
	ASSERT_LACKS(s, "HIJACK");
	free(s);
	json_decref(extra);
}

/* ---------------------------------------------------------------- paging */

static int page_of(const char *data, cec_page_t *pg, cec_status_t *st, const cec_profile_t *p)
{
	json_t *d = parse(data);
	int r = evcs_cec_validate_stations_info(d, p, pg, st);
	json_decref(d);
	return r;
}

static void test_paging_validation(void)
{
	cec_profile_t p = prof();
	cec_page_t pg;
	cec_status_t st;
	CU_ASSERT_EQUAL(page_of("{}", &pg, &st, &p), 0);
	CU_ASSERT_EQUAL(pg.page_no, 1);
	CU_ASSERT_EQUAL(pg.page_size, 10);
	CU_ASSERT_FALSE(pg.has_since);
	CU_ASSERT_EQUAL(evcs_cec_page_offset(&pg), 0);
	CU_ASSERT_EQUAL(page_of("{\"PageNo\":3,\"PageSize\":20,\"LastQueryTime\":\"\"}", &pg, &st, &p), 0);
	CU_ASSERT_EQUAL(evcs_cec_page_offset(&pg), 40);
	CU_ASSERT_FALSE(pg.has_since);
	CU_ASSERT_EQUAL(page_of("{\"pageno\":\"2\",\"PageSize\":1000}", &pg, &st, &p), 0);
	CU_ASSERT_EQUAL(pg.page_no, 2);
	CU_ASSERT_EQUAL(pg.page_size, 100); /* clamped */
	CU_ASSERT_EQUAL(page_of("{\"LastQueryTime\":\"2016-07-29 14:24:00\"}", &pg, &st, &p), 0);
	CU_ASSERT_TRUE(pg.has_since);
	CU_ASSERT_EQUAL(pg.since, 1469773440);
	static const struct {
		const char *data, *field;
	} bad[] = {
		{"{\"PageNo\":0}", "PageNo"},
		{"{\"PageNo\":-1}", "PageNo"},
		{"{\"PageNo\":1.5}", "PageNo"},
		{"{\"PageSize\":0}", "PageSize"},
		{"{\"PageSize\":\"ten\"}", "PageSize"},
		{"{\"LastQueryTime\":\"20160729142400\"}", "LastQueryTime"},
		{"{\"LastQueryTime\":5}", "LastQueryTime"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_EQUAL(page_of(bad[i].data, &pg, &st, &p), CEC_RET_BIZ);
		CU_ASSERT_EQUAL(st.ret, CEC_RET_BIZ);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, bad[i].field));
	}
}

static void test_paging_reply(void)
{
	cec_profile_t p = prof();
	cec_page_t pg = {.page_no = 1, .page_size = 10};
	char *s = dump(evcs_cec_stations_info_reply(&p, &pg, 21, &station, 1, NULL));
	json_t *j = parse(s);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "PageNo")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "PageCount")), 3);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "ItemSize")), 21);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "StationInfos")), 1);
	json_decref(j);
	free(s);
	/* Past the end: that PageNo and an empty list. */
	pg.page_no = 9;
	s = dump(evcs_cec_stations_info_reply(&p, &pg, 20, NULL, 0, NULL));
	CU_ASSERT_STRING_EQUAL(s, "{\"PageNo\":9,\"PageCount\":2,\"ItemSize\":20,\"StationInfos\":[]}");
	free(s);
	pg.page_no = 1;
	s = dump(evcs_cec_stations_info_reply(&p, &pg, 0, NULL, 0, NULL));
	CU_ASSERT_STRING_EQUAL(s, "{\"PageNo\":1,\"PageCount\":0,\"ItemSize\":0,\"StationInfos\":[]}");
	free(s);
}

/* -------------------------------------------------------- station status */

static void test_station_status(void)
{
	cec_profile_t p = prof();
	cec_station_ids_t ids;
	cec_status_t st;
	json_t *d = parse("{\"StationIDs\":[\"S0001\",\"S0002\"]}");
	CU_ASSERT_EQUAL(evcs_cec_validate_station_status(d, &p, &ids, &st), 0);
	CU_ASSERT_EQUAL(ids.n, 2);
	CU_ASSERT_STRING_EQUAL(ids.ids[1], "S0002");
	evcs_cec_station_ids_clear(&ids);
	json_decref(d);
	/* 51 ids, missing, wrong type, bad element. */
	json_t *many = json_array();
	for (int i = 0; i < 51; i++)
		json_array_append_new(many, json_string("S"));
	d = json_pack("{s:o}", "StationIDs", many);
	CU_ASSERT_EQUAL(evcs_cec_validate_station_status(d, &p, &ids, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "StationIDs"));
	json_decref(d);
	const char *bad[] = {"{}", "{\"StationIDs\":\"S0001\"}", "{\"StationIDs\":[\"S1\",3]}", "{\"StationIDs\":[\"\"]}"};
	for (size_t i = 0; i < 4; i++) {
		d = parse(bad[i]);
		CU_ASSERT_EQUAL(evcs_cec_validate_station_status(d, &p, &ids, &st), CEC_RET_BIZ);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "StationIDs"));
		CU_ASSERT_PTR_NULL(ids.ids);
		json_decref(d);
	}

	char *s = dump(evcs_cec_station_status_reply(&p, &station, 1));
	CU_ASSERT_STRING_EQUAL(s, "{\"Total\":1,\"StationStatusInfos\":[{\"StationID\":\"S0001\",\"ConnectorStatusInfos\":["
				  "{\"ConnectorID\":\"3201060001923601\",\"Status\":3},"
				  "{\"ConnectorID\":\"3201060001923602\",\"Status\":2,\"ParkStatus\":50,\"LockStatus\":10},"
				  "{\"ConnectorID\":\"3201060001923701\",\"Status\":0}]}]}");
	free(s);
	p.lower_camel_ids = true; /* ORISE */
	s = dump(evcs_cec_station_status_reply(&p, &station, 1));
	ASSERT_HAS(s, "\"stationID\":\"S0001\"");
	ASSERT_HAS(s, "\"connectorID\":\"3201060001923601\"");
	ASSERT_LACKS(s, "ConnectorID");
	free(s);
}

/* ---------------------------------------------------------- station stats */

static void test_station_stats(void)
{
	cec_profile_t p = prof();
	cec_stats_req_t rq;
	cec_status_t st;
	json_t *d = parse("{\"StationID\":\"S0001\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-01-07\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_station_stats(d, &p, &rq, &st), 0);
	CU_ASSERT_EQUAL(rq.end_epoch - rq.start_epoch, 7 * 86400);
	CU_ASSERT_EQUAL(rq.start_epoch, 1704038400); /* 2024-01-01 00:00 +8 */
	json_decref(d);
	static const struct {
		const char *data, *field;
	} bad[] = {
		{"{\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-01-02\"}", "StationID"},
		{"{\"StationID\":\"S\",\"StartTime\":\"2024/01/01\",\"EndTime\":\"2024-01-02\"}", "StartTime"},
		{"{\"StationID\":\"S\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-02-30\"}", "EndTime"},
		{"{\"StationID\":\"S\",\"StartTime\":\"2024-01-05\",\"EndTime\":\"2024-01-02\"}", "EndTime"},
		{"{\"StationID\":\"S\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-03-01\"}", "StartTime..EndTime"},
		{"{\"StationID\":\"S\",\"StartTime\":\"2024-01-01\"}", "EndTime"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		d = parse(bad[i].data);
		CU_ASSERT_EQUAL(evcs_cec_validate_station_stats(d, &p, &rq, &st), CEC_RET_BIZ);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, bad[i].field));
		json_decref(d);
	}
	/* ORISE's 7-day limit via the profile. */
	p.stats_max_days = 7;
	d = parse("{\"StationID\":\"S\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-01-08\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_station_stats(d, &p, &rq, &st), CEC_RET_BIZ);
	json_decref(d);
	d = parse("{\"StationID\":\"S0001\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-01-07\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_station_stats(d, &p, &rq, &st), 0);
	json_decref(d);

	/* 12.34 + 0.0449 kWh: the equipment total is rounded once (12.4), not per connector. */
	const cec_connector_stats_t c1[] = {{"C1", 123400}, {"C2", 449}};
	const cec_connector_stats_t c2[] = {{"C3", 500}};
	const cec_equipment_stats_t eq[] = {{"E1", c1, 2}, {"E2", c2, 1}};
	char *s = dump(evcs_cec_station_stats_reply(&p, &rq, eq, 2));
	CU_ASSERT_STRING_EQUAL(
		s, "{\"StationStats\":{\"StationID\":\"S0001\",\"StartTime\":\"2024-01-01\",\"EndTime\":\"2024-01-07\","
		   "\"StationElectricity\":12.4,\"EquipmentStatsInfos\":[{\"EquipmentID\":\"E1\",\"EquipmentElectricity\":"
		   "12.4,\"ConnectorStatsInfos\":[{\"ConnectorID\":\"C1\",\"ConnectorElectricity\":12.3},{\"ConnectorID\":"
		   "\"C2\",\"ConnectorElectricity\":0.0}]},{\"EquipmentID\":\"E2\",\"EquipmentElectricity\":0.1,"
		   "\"ConnectorStatsInfos\":[{\"ConnectorID\":\"C3\",\"ConnectorElectricity\":0.1}]}]}}");
	free(s);
	p.stats_star_time = true;
	s = dump(evcs_cec_station_stats_reply(&p, &rq, eq, 0));
	ASSERT_HAS(s, "\"StarTime\":\"2024-01-01\"");
	ASSERT_HAS(s, "\"EquipmentStatsInfos\":[]");
	free(s);
}

/* ------------------------------------------------------ part 3 requests */

struct conns {
	int calls;
	bool fail;
	char last[128];
};

static int conn_lookup(void *ud, const char *id)
{
	struct conns *c = ud;
	c->calls++;
	snprintf(c->last, sizeof c->last, "%s", id);
	if (c->fail)
		return -1;
	for (size_t i = 0; i < sizeof guns / sizeof guns[0]; i++)
		if (!strcmp(guns[i].connector_id, id))
			return 1;
	return 0;
}

typedef int (*biz_validator)(const json_t *, const char *, const cec_profile_t *, cec_connector_fn, void *,
			     cec_biz_req_t *, cec_status_t *);

static int run(biz_validator fn, const char *data, const cec_profile_t *p, struct conns *c, cec_biz_req_t *out,
	       cec_status_t *st)
{
	json_t *d = parse(data);
	int r = fn(d, OPID, p, conn_lookup, c, out, st);
	json_decref(d);
	return r;
}

static void test_equip_auth_validation(void)
{
	cec_profile_t p = prof();
	struct conns c = {0};
	cec_biz_req_t rq;
	cec_status_t st;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth,
			    "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\"}", &p, &c, &rq, &st),
			0);
	CU_ASSERT_STRING_EQUAL(rq.seq, SEQ27);
	CU_ASSERT_STRING_EQUAL(rq.connector_id, "3201060001923601");
	CU_ASSERT_TRUE(rq.connector_known);
	static const struct {
		const char *data, *field;
	} bad[] = {
		{"{\"ConnectorID\":\"3201060001923601\"}", "EquipAuthSeq missing"},
		{"{\"EquipAuthSeq\":12,\"ConnectorID\":\"3201060001923601\"}", "EquipAuthSeq must be a string"},
		{"{\"EquipAuthSeq\":\"12345678920180508162812345\",\"ConnectorID\":\"3201060001923601\"}",
		 "EquipAuthSeq must be 27"},
		{"{\"EquipAuthSeq\":\"12345678920180508162812345-\",\"ConnectorID\":\"3201060001923601\"}",
		 "EquipAuthSeq must be letters"},
		{"{\"EquipAuthSeq\":\"987654321201805081628123456\",\"ConnectorID\":\"3201060001923601\"}",
		 "EquipAuthSeq must start"},
		{"{\"EquipAuthSeq\":\"" SEQ27 "\"}", "ConnectorID missing"},
		{"{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"\"}", "ConnectorID empty"},
		{"{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"nope\"}", "ConnectorID unknown"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth, bad[i].data, &p, &c, &rq, &st), CEC_RET_BIZ);
		if (!strstr(st.msg, bad[i].field))
			fprintf(stderr, "\n[%s] vs [%s]\n", st.msg, bad[i].field);
		CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, bad[i].field));
	}
	/* Partners that do not prefix their seq, with the check off. */
	p.seq_prefix_check = false;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth,
			    "{\"EquipAuthSeq\":\"987654321201805081628123456\",\"ConnectorID\":\"3201060001923601\"}",
			    &p, &c, &rq, &st),
			0);
	/* A failing lookup is ours: 500. */
	c.fail = true;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth,
			    "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\"}", &p, &c, &rq, &st),
			CEC_RET_SYSTEM);
	/* Data that is not an object. */
	json_t *arr = json_array();
	CU_ASSERT_EQUAL(evcs_cec_validate_equip_auth(arr, OPID, &p, conn_lookup, &c, &rq, &st), CEC_RET_BIZ);
	json_decref(arr);
}

static void test_business_policy_validation(void)
{
	cec_profile_t p = prof();
	struct conns c = {0};
	cec_biz_req_t rq;
	cec_status_t st;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_business_policy,
			    "{\"EquipBizSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923701\"}", &p, &c, &rq, &st),
			0);
	CU_ASSERT_EQUAL(run(evcs_cec_validate_business_policy, "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"x\"}",
			    &p, &c, &rq, &st),
			CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "EquipBizSeq"));
}

static void test_start_charge_validation(void)
{
	cec_profile_t p = prof();
	struct conns c = {0};
	cec_biz_req_t rq;
	cec_status_t st;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge,
			    "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"QrCode\":\"hlht://x\","
			    "\"PhoneNum\":\"13800000000\",\"PlateNum\":\"沪A12345\",\"Balance\":100.5}",
			    &p, &c, &rq, &st),
			0);
	CU_ASSERT_STRING_EQUAL(rq.qr_code, "hlht://x");
	CU_ASSERT_STRING_EQUAL(rq.plate, "沪A12345");
	CU_ASSERT_TRUE(rq.has_balance);
	CU_ASSERT_EQUAL(rq.balance, 10050000);
	/* Standard spelling, no ORISE extras. */
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge,
			    "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"QRCode\":\"q\"}",
			    &p, &c, &rq, &st),
			0);
	CU_ASSERT_STRING_EQUAL(rq.qr_code, "q");
	CU_ASSERT_FALSE(rq.has_balance);
	/* Unknown connector: the standard answers FailReason 1 (no such device) with Ret 0... */
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge, "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"X9\"}",
			    &p, &c, &rq, &st),
			0);
	CU_ASSERT_FALSE(rq.connector_known);
	CU_ASSERT_STRING_EQUAL(rq.connector_id, "X9");
	json_t *reply = evcs_cec_start_charge_reply(&p, &rq, CEC_SEQ_UNKNOWN, 1);
	char *s = dump(reply);
	CU_ASSERT_STRING_EQUAL(s, "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":5,\"ConnectorID\":\"X9\","
				  "\"SuccStat\":1,\"FailReason\":1}");
	free(s);
	/* ...or 4004 naming the field when the profile asks for it. */
	p.unknown_connector_4004 = true;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge, "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"X9\"}",
			    &p, &c, &rq, &st),
			CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "ConnectorID"));
	/* Bad Balance and a too-long QR code. */
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge,
			    "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"Balance\":\"lots\"}",
			    &p, &c, &rq, &st),
			CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "Balance"));
	char big[600];
	int n = snprintf(big, sizeof big, "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"QRCode\":\"");
	memset(big + n, 'q', 300);
	strcpy(big + n + 300, "\"}");
	CU_ASSERT_EQUAL(run(evcs_cec_validate_start_charge, big, &p, &c, &rq, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "QRCode"));
}

static void test_qr_url_connector(void)
{
	cec_profile_t p = prof();
	struct conns c = {0};
	cec_biz_req_t rq;
	cec_status_t st;
	const char *data = "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"https://q.example/c?no=3201060001923601&v=2\"}";
	/* Without the ORISE flag the URL is looked up as-is and is unknown. */
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth, data, &p, &c, &rq, &st), CEC_RET_BIZ);
	p.qr_url_connector = true;
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth, data, &p, &c, &rq, &st), 0);
	CU_ASSERT_STRING_EQUAL(rq.connector_id, "3201060001923601");
	CU_ASSERT_STRING_EQUAL(c.last, "3201060001923601");
	/* Plain ids are untouched by the flag. */
	CU_ASSERT_EQUAL(run(evcs_cec_validate_equip_auth,
			    "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923701\"}", &p, &c, &rq, &st),
			0);
	CU_ASSERT_STRING_EQUAL(rq.connector_id, "3201060001923701");
}

static void test_charge_status_stop_token_validation(void)
{
	cec_profile_t p = prof();
	struct conns c = {0};
	cec_biz_req_t rq;
	cec_status_t st;
	json_t *d = parse("{\"StartChargeSeq\":\"" SEQ27 "\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_charge_status(d, OPID, &p, &rq, &st), 0);
	CU_ASSERT_STRING_EQUAL(rq.seq, SEQ27);
	json_decref(d);
	d = parse("{\"startchargeseq\":\"short\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_charge_status(d, OPID, &p, &rq, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "StartChargeSeq"));
	json_decref(d);
	CU_ASSERT_EQUAL(run(evcs_cec_validate_stop_charge,
			    "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\"}", &p, &c, &rq, &st),
			0);
	CU_ASSERT_EQUAL(run(evcs_cec_validate_stop_charge, "{\"StartChargeSeq\":\"" SEQ27 "\"}", &p, &c, &rq, &st),
			CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "ConnectorID"));
	d = parse("{\"OperatorID\":\"123456789\",\"OperatorSecret\":\"s\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_token(d, &st), 0);
	json_decref(d);
	d = parse("{\"OperatorID\":\"123456789\"}");
	CU_ASSERT_EQUAL(evcs_cec_validate_token(d, &st), CEC_RET_BIZ);
	CU_ASSERT_PTR_NOT_NULL(strstr(st.msg, "OperatorSecret"));
	json_decref(d);
}

/* -------------------------------------------------------- part 3 replies */

static const cec_biz_req_t REQ = {.seq = SEQ27, .connector_id = "3201060001923601", .connector_known = true};

static void test_equip_auth_reply(void)
{
	cec_profile_t p = prof();
	char *s = dump(evcs_cec_equip_auth_reply(&p, &REQ, 0, NULL));
	CU_ASSERT_STRING_EQUAL(s, "{\"EquipAuthSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"SuccStat\":0,"
				  "\"FailReason\":0}");
	free(s);
	p.equip_auth_fail_msg = true;
	s = dump(evcs_cec_equip_auth_reply(&p, &REQ, 1, "gun not plugged in"));
	ASSERT_HAS(s, "\"SuccStat\":1,\"FailReason\":1,\"FailReasonMsg\":\"gun not plugged in\"");
	free(s);
}

static void test_business_policy_reply(void)
{
	cec_profile_t p = prof();
	const cec_policy_period_t per[] = {
		{0, 80000, 40000, CEC_PT_VALLEY},
		{8 * 3600, 120000, 60000, CEC_PT_PEAK},
		{19 * 3600 + 30 * 60, 150005, 60000, CEC_PT_CUSP},
	};
	char *s = dump(evcs_cec_business_policy_reply(&p, &REQ, per, 3, 0));
	CU_ASSERT_STRING_EQUAL(s, "{\"EquipBizSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"SuccStat\":0,"
				  "\"FailReason\":0,\"SumPeriod\":3,\"PolicyInfos\":["
				  "{\"StartTime\":\"000000\",\"ElecPrice\":0.8000,\"SevicePrice\":0.4000},"
				  "{\"StartTime\":\"080000\",\"ElecPrice\":1.2000,\"SevicePrice\":0.6000},"
				  "{\"StartTime\":\"193000\",\"ElecPrice\":1.5001,\"SevicePrice\":0.6000}]}");
	free(s);
	p.spell_service = true;
	p.policy_price_type = true;
	s = dump(evcs_cec_business_policy_reply(&p, &REQ, per, 3, 0));
	ASSERT_HAS(s, "{\"StartTime\":\"080000\",\"ElecPrice\":1.2000,\"ServicePrice\":0.6000,\"PriceType\":1}");
	ASSERT_LACKS(s, "Sevice");
	free(s);
	s = dump(evcs_cec_business_policy_reply(&p, &REQ, per, 3, 1));
	ASSERT_HAS(s, "\"SuccStat\":1,\"FailReason\":1,\"SumPeriod\":0,\"PolicyInfos\":[]");
	free(s);
	cec_policy_period_t many[33] = {{0}};
	CU_ASSERT_PTR_NULL(evcs_cec_business_policy_reply(&p, &REQ, many, 33, 0));
}

static void test_start_stop_replies(void)
{
	cec_profile_t p = prof();
	char *s = dump(evcs_cec_start_charge_reply(&p, &REQ, CEC_SEQ_STARTING, 0));
	CU_ASSERT_STRING_EQUAL(s, "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":1,\"ConnectorID\":"
				  "\"3201060001923601\",\"SuccStat\":0,\"FailReason\":0}");
	free(s);
	s = dump(evcs_cec_stop_charge_reply(&p, &REQ, CEC_SEQ_FINISHED, 3));
	CU_ASSERT_STRING_EQUAL(s, "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":4,\"SuccStat\":1,"
				  "\"FailReason\":3}");
	free(s);
}

/* A 2-period session: 10:00-11:00 peak, 11:00-11:30 flat, 2016-07-29 (+8). */
static const cec_charge_detail_t DET[] = {
	{1469757600, 1469761200, 120000, 60000, 123456, 1481472, 740736, CEC_PT_PEAK},
	{1469761200, 1469763000, 80000, 60000, 50000, 400000, 300000, CEC_PT_FLAT},
};

static cec_session_t session(void)
{
	cec_session_t s = {
		.start_charge_seq = SEQ27, .seq_stat = CEC_SEQ_CHARGING, .connector_id = "3201060001923601",
		.connector_status = CEC_CS_CHARGING, .live = {{1605, 0, 0}, {7502, 0, 0}, 1, 57},
		.start_time = 1469757600, .sample_time = 1469763000, .end_time = 1469763000,
		.energy = 173456, .elec_money = 1881472, .service_money = 1040736, .total_money = 2922208,
		.details = DET, .n_details = 2, .stop_reason = 2, .vin = "LSVAU2180N2183294"};
	return s;
}

static const char DETAILS_JSON[] =
	"\"ChargeDetails\":[{\"DetailStartTime\":\"2016-07-29 10:00:00\",\"DetailEndTime\":\"2016-07-29 11:00:00\","
	"\"ElecPrice\":1.2000,\"SevicePrice\":0.6000,\"DetailPower\":12.346,\"DetailElecMoney\":14.81,"
	"\"DetailSeviceMoney\":7.41},{\"DetailStartTime\":\"2016-07-29 11:00:00\",\"DetailEndTime\":"
	"\"2016-07-29 11:30:00\",\"ElecPrice\":0.8000,\"SevicePrice\":0.6000,\"DetailPower\":5.000,"
	"\"DetailElecMoney\":4.00,\"DetailSeviceMoney\":3.00}]";

static void test_charge_status_bodies(void)
{
	cec_profile_t p = prof();
	cec_session_t ss = session();
	char *s = dump(evcs_cec_charge_status_reply(&p, &ss));
	char want[2048];
	snprintf(want, sizeof want,
		 "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":2,\"ConnectorID\":\"3201060001923601\","
		 "\"ConnectorStatus\":3,\"CurrentA\":160.5,\"VoltageA\":750.2,\"Soc\":57,\"StartTime\":"
		 "\"2016-07-29 10:00:00\",\"EndTime\":\"2016-07-29 11:30:00\",\"TotalPower\":17.346,\"ElecMoney\":18.81,"
		 "\"SeviceMoney\":10.41,\"TotalMoney\":29.22,\"SumPeriod\":2,%s}",
		 DETAILS_JSON);
	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
	/* The push has the same body. */
	s = dump(evcs_cec_notify_charge_status(&p, &ss));
	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
	/* XJ: ElectMoney in the query reply only; SH: in the push. 2-decimal energy profile. */
	p.elect_money_query = true;
	p.energy_decimals = 2;
	s = dump(evcs_cec_charge_status_reply(&p, &ss));
	ASSERT_HAS(s, "\"ElectMoney\":18.81");
	ASSERT_HAS(s, "\"TotalPower\":17.35");
	ASSERT_HAS(s, "\"DetailPower\":12.35");
	free(s);
	s = dump(evcs_cec_notify_charge_status(&p, &ss));
	ASSERT_HAS(s, "\"ElecMoney\":18.81");
	free(s);
	p.elect_money_push = true;
	s = dump(evcs_cec_notify_charge_status(&p, &ss));
	ASSERT_HAS(s, "\"ElectMoney\":18.81");
	free(s);
	/* Three phases, unknown SOC, no details. */
	ss.live = LIVE3;
	ss.live.soc = -1;
	ss.n_details = 0;
	s = dump(evcs_cec_notify_charge_status(&p, &ss));
	ASSERT_HAS(s, "\"CurrentA\":160.5,\"VoltageA\":220.1,\"CurrentB\":159.8,\"VoltageB\":219.9,\"CurrentC\":161.0,"
		      "\"VoltageC\":220.3,\"StartTime\"");
	ASSERT_LACKS(s, "Soc");
	ASSERT_HAS(s, "\"SumPeriod\":0,\"ChargeDetails\":[]");
	free(s);
}

/* ------------------------------------------------------------------ pushes */

static void test_notify_station_status(void)
{
	cec_profile_t p = prof();
	char *s = dump(evcs_cec_notify_station_status(&p, &guns[1]));
	CU_ASSERT_STRING_EQUAL(s, "{\"ConnectorStatusInfo\":{\"ConnectorID\":\"3201060001923602\",\"Status\":2,"
				  "\"ParkStatus\":50,\"LockStatus\":10}}");
	free(s);
	p.status_push_array = true; /* CJV */
	s = dump(evcs_cec_notify_station_status(&p, &guns[2]));
	CU_ASSERT_STRING_EQUAL(s, "{\"ConnectorStatusInfos\":[{\"ConnectorID\":\"3201060001923701\",\"Status\":0}]}");
	free(s);
	p.status_push_array = false;
	p.status_push_live = true; /* SH */
	s = dump(evcs_cec_notify_station_status(&p, &guns[0]));
	CU_ASSERT_STRING_EQUAL(s, "{\"ConnectorStatusInfo\":{\"ConnectorID\":\"3201060001923601\",\"Status\":3,"
				  "\"CurrentA\":160.5,\"VoltageA\":220.1,\"CurrentB\":159.8,\"VoltageB\":219.9,"
				  "\"CurrentC\":161.0,\"VoltageC\":220.3,\"SOC\":57}}");
	free(s);
	/* A gun with no live data gets no live members. */
	s = dump(evcs_cec_notify_station_status(&p, &guns[2]));
	ASSERT_LACKS(s, "Current");
	free(s);
}

static void test_notify_start_stop(void)
{
	cec_profile_t p = prof();
	char *s = dump(evcs_cec_notify_start_result(&p, SEQ27, CEC_SEQ_CHARGING, "3201060001923601", 1469757600, NULL));
	CU_ASSERT_STRING_EQUAL(s, "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":2,\"ConnectorID\":"
				  "\"3201060001923601\",\"StartTime\":\"2016-07-29 10:00:00\"}");
	free(s);
	s = dump(evcs_cec_notify_start_result(&p, SEQ27, CEC_SEQ_FINISHED, "3201060001923601", 1469757600, "99"));
	ASSERT_HAS(s, "\"IdentCode\":\"99\"");
	free(s);
	s = dump(evcs_cec_notify_stop_result(&p, SEQ27, CEC_SEQ_FINISHED, "3201060001923601", 0));
	CU_ASSERT_STRING_EQUAL(s, "{\"StartChargeSeq\":\"" SEQ27 "\",\"StartChargeSeqStat\":4,\"ConnectorID\":"
				  "\"3201060001923601\",\"SuccStat\":0,\"FailReason\":0}");
	free(s);
	s = dump(evcs_cec_notify_stop_result(&p, SEQ27, CEC_SEQ_CHARGING, "3201060001923601", 2));
	ASSERT_HAS(s, "\"SuccStat\":1,\"FailReason\":2");
	free(s);
}

static void test_notify_order_info(void)
{
	cec_profile_t p = prof();
	cec_session_t ss = session();
	char *s = dump(evcs_cec_notify_order_info(&p, &ss));
	char want[2048];
	snprintf(want, sizeof want,
		 "{\"StartChargeSeq\":\"" SEQ27 "\",\"ConnectorID\":\"3201060001923601\",\"StartTime\":"
		 "\"2016-07-29 10:00:00\",\"EndTime\":\"2016-07-29 11:30:00\",\"TotalPower\":17.346,"
		 "\"TotalElecMoney\":18.81,\"TotalSeviceMoney\":10.41,\"TotalMoney\":29.22,\"StopReason\":2,"
		 "\"SumPeriod\":2,%s}",
		 DETAILS_JSON);
	CU_ASSERT_STRING_EQUAL(s, want);
	free(s);
	/* ORISE: SubPeriod and Vin; XJ spelling; CJV AccountDate. */
	p.sub_period = true;
	p.order_vin = true;
	p.spell_service = true;
	p.order_account_date = true;
	s = dump(evcs_cec_notify_order_info(&p, &ss));
	ASSERT_HAS(s, "\"SubPeriod\":2");
	ASSERT_LACKS(s, "SumPeriod");
	ASSERT_HAS(s, "\"TotalServiceMoney\":10.41");
	ASSERT_HAS(s, "\"DetailServiceMoney\":7.41");
	ASSERT_HAS(s, "\"Vin\":\"LSVAU2180N2183294\"");
	ASSERT_HAS(s, "\"AccountDate\":\"2016-07-29\"");
	ASSERT_LACKS(s, "Sevice");
	free(s);
}

static void test_order_tou_summary(void)
{
	cec_profile_t p = prof();
	p.order_tou_summary = true;
	cec_charge_detail_t det[3] = {DET[0], DET[1], DET[0]};
	det[2].energy = 10000;
	det[2].elec_money = 120000;
	det[2].service_money = 60000;
	cec_session_t ss = session();
	ss.details = det;
	ss.n_details = 3;
	char *s = dump(evcs_cec_notify_order_info(&p, &ss));
	ASSERT_HAS(s, "\"CuspElect\":0.000,\"CuspElectPrice\":0.0000,\"CuspServicePrice\":0.0000,\"CuspMoney\":0.00");
	/* Peak: 12.3456 + 1.0000 kWh, 14.81472+7.40736+1.2+0.6 = 24.02208 yuan. */
	ASSERT_HAS(s, "\"PeakElect\":13.346,\"PeakElectPrice\":1.2000,\"PeakServicePrice\":0.6000,\"PeakMoney\":24.02");
	ASSERT_HAS(s, "\"FlatElect\":5.000,\"FlatElectPrice\":0.8000,\"FlatServicePrice\":0.6000,\"FlatMoney\":7.00");
	ASSERT_HAS(s, "\"ValleyElect\":0.000");
	free(s);
}

static void test_order_too_many_periods(void)
{
	cec_profile_t p = prof();
	cec_charge_detail_t det[33];
	for (int i = 0; i < 33; i++)
		det[i] = DET[0];
	cec_session_t ss = session();
	ss.details = det;
	ss.n_details = 33;
	CU_ASSERT_PTR_NULL(evcs_cec_notify_order_info(&p, &ss));
	CU_ASSERT_PTR_NULL(evcs_cec_notify_charge_status(&p, &ss));
	ss.n_details = 32;
	json_t *j = evcs_cec_notify_order_info(&p, &ss);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "ChargeDetails")), 32);
	json_decref(j);
}

static void test_check_charge_orders(void)
{
	cec_profile_t p = prof();
	const cec_order_sum_t orders[] = {
		{"123456789000000000000000001", 123455, 1234567}, /* 12.3455 kWh -> 12.346; 12.34567 -> 12.35 */
		{"123456789000000000000000002", 5, 499},          /* 0.0005 -> 0.001; 0.00499 -> 0.00 */
		{"123456789000000000000000003", 100000, 1000000},
	};
	char *s = dump(evcs_cec_check_charge_orders(&p, "123456789202401020000000001", 1704038400,
						    1704038400 + 86399, orders, 3));
	CU_ASSERT_STRING_EQUAL(
		s, "{\"CheckOrderSeq\":\"123456789202401020000000001\",\"StartTime\":\"2024-01-01 00:00:00\","
		   "\"EndTime\":\"2024-01-01 23:59:59\",\"OrderCount\":3,\"TotalOrderPower\":22.347,"
		   "\"TotalOrderMoney\":22.35,\"ChargeOrders\":[{\"StartChargeSeq\":\"123456789000000000000000001\","
		   "\"TotalPower\":12.346,\"TotalMoney\":12.35},{\"StartChargeSeq\":\"123456789000000000000000002\","
		   "\"TotalPower\":0.001,\"TotalMoney\":0.00},{\"StartChargeSeq\":\"123456789000000000000000003\","
		   "\"TotalPower\":10.000,\"TotalMoney\":10.00}]}");
	free(s);
	s = dump(evcs_cec_check_charge_orders(&p, "123456789202401020000000001", 0, 0, NULL, 0));
	ASSERT_HAS(s, "\"OrderCount\":0,\"TotalOrderPower\":0.000,\"TotalOrderMoney\":0.00,\"ChargeOrders\":[]");
	free(s);
}

/* ------------------------------------------------------ replies to pushes */

static void test_push_replies(void)
{
	static const struct {
		cec_iface_t iface;
		const char *data;
		int rc;
		bool done;
		int code;
	} v[] = {
		{CEC_IF_NOTIFY_STATION_STATUS, "{\"Status\":0}", 0, true, 0},
		{CEC_IF_NOTIFY_STATION_STATUS, "{\"Status\":1}", 0, true, 1}, /* discarded, no retry needed */
		{CEC_IF_NOTIFY_STATION_STATUS, "{\"Status\":2}", 0, false, 2},
		{CEC_IF_NOTIFY_STATION_STATUS, "{}", CEC_RET_BIZ, false, 0},
		{CEC_IF_NOTIFY_START_CHARGE_RESULT, "{\"StartChargeSeq\":\"x\",\"SuccStat\":0,\"FailReason\":0}", 0, true, 0},
		{CEC_IF_NOTIFY_START_CHARGE_RESULT, "{\"SuccStat\":1,\"FailReason\":1}", 0, false, 1},
		{CEC_IF_NOTIFY_EQUIP_CHARGE_STATUS, "{\"succstat\":\"0\"}", 0, true, 0},
		{CEC_IF_NOTIFY_STOP_CHARGE_RESULT, "{\"SuccStat\":1}", 0, false, 1},
		{CEC_IF_NOTIFY_CHARGE_ORDER_INFO, "{\"StartChargeSeq\":\"x\",\"ConnectorID\":\"c\",\"ConfirmResult\":0}", 0,
		 true, 0},
		{CEC_IF_NOTIFY_CHARGE_ORDER_INFO, "{\"ConfirmResult\":1}", 0, false, 1}, /* disputed: keep pushing */
		{CEC_IF_NOTIFY_CHARGE_ORDER_INFO, "{\"SuccStat\":0}", CEC_RET_BIZ, false, 0},
		{CEC_IF_CHECK_CHARGE_ORDERS, "{\"CheckOrderSeq\":\"x\"}", 0, true, 0},
		{CEC_IF_QUERY_TOKEN, "{}", CEC_RET_BIZ, false, 0},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		json_t *d = parse(v[i].data);
		cec_push_result_t r;
		cec_status_t st;
		CU_ASSERT_EQUAL(evcs_cec_parse_push_reply(v[i].iface, d, &r, &st), v[i].rc);
		CU_ASSERT_EQUAL(r.done, v[i].done);
		CU_ASSERT_EQUAL(r.code, v[i].code);
		json_decref(d);
	}
	cec_push_result_t r;
	CU_ASSERT_EQUAL(evcs_cec_parse_push_reply(CEC_IF_NOTIFY_STATION_STATUS, NULL, &r, NULL), CEC_RET_BIZ);
}

static void test_check_reply(void)
{
	json_t *d = parse("{\"CheckOrderSeq\":\"123456789202401020000000001\",\"StartTime\":\"2024-01-01 00:00:00\","
			  "\"EndTime\":\"2024-01-01 23:59:59\",\"TotalDisputeOrder\":2,\"TotalDisputePower\":12.35,"
			  "\"TotalDisputeMoney\":\"22.35\",\"DisputeOrders\":["
			  "{\"StartChargeSeq\":\"123456789000000000000000001\",\"TotalPower\":12.346,\"TotalMoney\":12.35,"
			  "\"DisputeReason\":2},"
			  "{\"StartChargeSeq\":\"123456789000000000000000009\",\"TotalPower\":0,\"TotalMoney\":10,"
			  "\"DisputeReason\":1}]}");
	cec_check_reply_t r;
	cec_status_t st;
	CU_ASSERT_EQUAL_FATAL(evcs_cec_parse_check_reply(d, &r, &st), 0);
	CU_ASSERT_EQUAL(r.total_disputes, 2);
	CU_ASSERT_EQUAL(r.dispute_energy, 123500);
	CU_ASSERT_EQUAL(r.dispute_money, 2235000);
	CU_ASSERT_EQUAL_FATAL(r.n, 2);
	CU_ASSERT_STRING_EQUAL(r.disputes[0].start_charge_seq, "123456789000000000000000001");
	CU_ASSERT_EQUAL(r.disputes[0].energy, 123460);
	CU_ASSERT_EQUAL(r.disputes[0].total_money, 1235000);
	CU_ASSERT_EQUAL(r.disputes[0].reason, 2);
	CU_ASSERT_EQUAL(r.disputes[1].total_money, 1000000);
	CU_ASSERT_EQUAL(r.disputes[1].reason, 1);
	evcs_cec_check_reply_clear(&r);
	json_decref(d);
	/* No disputes at all. */
	d = parse("{\"CheckOrderSeq\":\"123456789202401020000000001\",\"TotalDisputeOrder\":0}");
	CU_ASSERT_EQUAL(evcs_cec_parse_check_reply(d, &r, &st), 0);
	CU_ASSERT_EQUAL(r.n, 0);
	evcs_cec_check_reply_clear(&r);
	json_decref(d);
	/* Malformed entries. */
	const char *bad[] = {
		"{\"TotalDisputeOrder\":0}",
		"{\"CheckOrderSeq\":\"x\",\"DisputeOrders\":{}}",
		"{\"CheckOrderSeq\":\"x\",\"DisputeOrders\":[{\"TotalPower\":1,\"DisputeReason\":1}]}",
		"{\"CheckOrderSeq\":\"x\",\"DisputeOrders\":[{\"StartChargeSeq\":\"s\",\"TotalMoney\":\"x\",\"DisputeReason\":1}]}",
		"{\"CheckOrderSeq\":\"x\",\"DisputeOrders\":[{\"StartChargeSeq\":\"s\"}]}",
		"{\"CheckOrderSeq\":\"x\",\"TotalDisputeMoney\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		d = parse(bad[i]);
		CU_ASSERT_EQUAL(evcs_cec_parse_check_reply(d, &r, &st), CEC_RET_BIZ);
		CU_ASSERT_PTR_NULL(r.disputes);
		json_decref(d);
	}
}

static void register_tests(void)
{
	CU_pSuite s = CU_add_suite("cec_model_enums", NULL, NULL);
	EVCS_ADD(s, test_iface_names);
	EVCS_ADD(s, test_status_mapping);
	s = CU_add_suite("cec_model_part2", NULL, NULL);
	EVCS_ADD(s, test_station_info_golden);
	EVCS_ADD(s, test_station_info_limits_and_utf8);
	EVCS_ADD(s, test_station_info_extra);
	EVCS_ADD(s, test_paging_validation);
	EVCS_ADD(s, test_paging_reply);
	EVCS_ADD(s, test_station_status);
	EVCS_ADD(s, test_station_stats);
	s = CU_add_suite("cec_model_part3_requests", NULL, NULL);
	EVCS_ADD(s, test_equip_auth_validation);
	EVCS_ADD(s, test_business_policy_validation);
	EVCS_ADD(s, test_start_charge_validation);
	EVCS_ADD(s, test_qr_url_connector);
	EVCS_ADD(s, test_charge_status_stop_token_validation);
	s = CU_add_suite("cec_model_part3_replies", NULL, NULL);
	EVCS_ADD(s, test_equip_auth_reply);
	EVCS_ADD(s, test_business_policy_reply);
	EVCS_ADD(s, test_start_stop_replies);
	EVCS_ADD(s, test_charge_status_bodies);
	s = CU_add_suite("cec_model_pushes", NULL, NULL);
	EVCS_ADD(s, test_notify_station_status);
	EVCS_ADD(s, test_notify_start_stop);
	EVCS_ADD(s, test_notify_order_info);
	EVCS_ADD(s, test_order_tou_summary);
	EVCS_ADD(s, test_order_too_many_periods);
	EVCS_ADD(s, test_check_charge_orders);
	EVCS_ADD(s, test_push_replies);
	EVCS_ADD(s, test_check_reply);
}

EVCS_TEST_MAIN(register_tests)
